package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/services/site"
)

func newServeCmd(g *globals) *cobra.Command {
	var cfg site.Config
	var services, tlsHosts, logLevel, logFormat, debugListen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the site: embedded NATS server with JetStream, and the services",
		Long: `Run a Steward site in this process.

By default everything runs here: an embedded NATS server with JetStream on
disk under --data, the auth callout, and every service. The first start
initialises the site: its code (--site), its signing key, and the bootstrap
Full Administrator identity <data>/admin.nk (mode 0600), which the CLI uses
by default. Later starts reuse the same data directory.

The first start also creates the site's certificate authority (<data>/tls).
The embedded server listens in plain text on loopback; on any other address
it requires TLS with a certificate the site CA signs (naming --tls-hosts,
the listen address, localhost and this machine). Enrollment tokens carry the
CA's fingerprint and agents pin it.

With --server, only the --services given run, against that external NATS
server or cluster (several URLs, comma-separated), reading the keys of a
data directory prepared by steward site init (it may be read-only); they
wait for the server and its JetStream. --replicas 3 on a cluster.

Sites link into a hierarchy (steward sites --help). A parent accepts child
sites on --leaf-listen (port 7422 by convention; TLS with the site's
certificate off loopback, as the client listener). A child links with
--parent, the parent's leaf URL, and the first time --parent-token, a site
token from steward sites token create at the parent: it makes its leaf key
<data>/keys/leaf.nk and pins the parent's code, signing key and CA from the
token in <data>/parent.json. The token (--parent-token, or the environment
variable STEWARD_PARENT_TOKEN, which keeps it out of the process list) is
kept in memory only, never written to any file; later starts link with the leaf key alone, to the URL
remembered in parent.json (--parent again replaces it). Each site's
JetStream is its own (its domain is the site code): only the site subjects
cross a link. --link-compression sets the links' compression: auto
(nats-server's default) compresses more the longer the round trip, and
under 10 ms only frames the data, which costs CPU for nothing; off suits
sites on one LAN (off at either end turns a link's compression off).

--debug-listen serves Go's profiler (net/http/pprof) on a loopback address
only, for diagnosing a site under load: go tool pprof
http://127.0.0.1:6060/debug/pprof/profile (CPU, 30 s), .../heap, or
.../goroutine?debug=1 for what every goroutine waits on; /debug/vars has
the memory statistics (heap, goroutine stacks, memory returned to the OS).

Stop it with Ctrl-C (SIGINT) or SIGTERM: services stop, then the server.`,
		Example: `  steward serve
  steward serve --data /var/lib/steward --listen 0.0.0.0:4222 --site HQ1
  steward serve --services discovery --server nats://nats:4222   # scale out: only these services, external NATS
  steward serve --services admin --server nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222 --replicas 3 --data /data
  steward serve --site HQ1 --listen 0.0.0.0:4222 --leaf-listen 0.0.0.0:7422         # a parent of child sites
  steward serve --site BR1 --parent nats://hq.example.org:7422 --parent-token STS1-... # a child, first start
  steward serve --site BR1                                                            # a child, later: parent.json remembers`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(g.stderr, logLevel, logFormat)
			if err != nil {
				return err
			}
			cfg.Log = log
			cfg.SiteSet = cmd.Flags().Changed("site")
			if f := cmd.Flag("server"); f != nil && f.Changed {
				cfg.Server = g.server // scale-out: services only, against that server
			}
			if services != "" {
				cfg.Services = strings.Split(services, ",")
			}
			cfg.TLSHosts = splitList(tlsHosts)
			if cfg.ParentToken == "" {
				cfg.ParentToken = os.Getenv("STEWARD_PARENT_TOKEN") // kept out of the process list
			}
			if debugListen != "" {
				addr, err := serveDebug(cmd.Context(), debugListen)
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stderr, "steward: profiler on http://%s/debug/pprof/\n", addr)
			}
			s, err := site.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "steward: site %s serving on %s (data %s)\nsteward: administrator identity: %s\n",
				s.Info.Site, s.URL(), cfg.DataDir, s.AdminIdentity())
			if u := s.LeafURL(); u != "" {
				fmt.Fprintf(g.stderr, "steward: child sites link to %s\n", u)
			}
			if p := s.Parent(); p != nil {
				fmt.Fprintf(g.stderr, "steward: linking to parent site %s at %s\n", p.Site, p.URL)
			}
			return s.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data", DefaultDataDir, "data directory: keys, JetStream store, admin identity")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:4222", "address of the embedded NATS server")
	f.StringVar(&cfg.Site, "site", "LAB", "site code, fixed at the first start")
	f.IntVar(&cfg.Replicas, "replicas", 1, "replicas of every stream, bucket and object store the services make (3 on a cluster)")
	f.StringVar(&tlsHosts, "tls-hosts", "", "comma-separated names and addresses the embedded server's certificate names (besides loopback, this host and --listen)")
	f.StringVar(&cfg.LeafListen, "leaf-listen", "", "accept child sites' leaf connections on HOST:PORT (e.g. 0.0.0.0:7422; TLS off loopback)")
	f.StringVar(&cfg.Parent, "parent", "", "link to the parent site's leaf listener, nats://host:7422 (remembered in <data>/parent.json)")
	f.StringVar(&cfg.ParentToken, "parent-token", "", "site token of the first link to --parent (steward sites token create, at the parent; or env STEWARD_PARENT_TOKEN); never stored")
	f.StringVar(&cfg.LinkCompression, "link-compression", "auto", "compression of the links to the parent and from child sites: auto (by round trip), off (sites on one LAN), fast, better, best")
	f.StringVar(&services, "services", "", "comma-separated services to run (default: all: "+strings.Join(site.AllServices, ",")+")")
	f.StringVar(&logLevel, "log-level", envOr("STEWARD_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&debugListen, "debug-listen", "", "serve Go's profiler (/debug/pprof/) on this loopback HOST:PORT, for diagnosing load (go tool pprof http://HOST:PORT/debug/pprof/profile)")
	return cmd
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: must be text or json", format)
}
