package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/services/site"
)

func newSiteCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "site", Short: "The site itself: its running services",
		Example: `  steward site services
  steward site --help     # init, nats-config and the rest`}
	cmd.AddCommand(&cobra.Command{
		Use:   "services",
		Short: "List running service instances (from $SRV)",
		Long: `List every running service instance of the site, as the services
themselves report through NATS micro's $SRV discovery: name, instance id,
version, requests served and errors.`,
		Example: `  steward site services
  steward site services -o json | jq -r '.[].name' | sort | uniq -c`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				list, err := c.SiteServices(ctx)
				if err != nil {
					return err
				}
				return g.print(list, func(w io.Writer) {
					fmt.Fprintln(w, "NAME\tID\tVERSION\tREQUESTS\tERRORS\tSTARTED\tENDPOINTS")
					for _, s := range list {
						fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\t%d\n", s.Name, s.ID, s.Version, s.Requests, s.Errors, ago(s.Started), len(s.Endpoints))
					}
				})
			})
		},
	})
	cmd.AddCommand(newSiteInitCmd(g), newSiteNATSConfigCmd(g), newSiteStreamsCmd(g))
	return cmd
}

func newSiteInitCmd(g *globals) *cobra.Command {
	var dir, code, hosts string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Initialise a site's data directory without running it",
		Long: `Initialise a site's data directory, as the first start of steward serve
does, without running anything: the site's keys, its certificate authority
and the servers' TLS certificate, the bootstrap administrator identity
admin.nk and site.json. Run it again to add host names to the servers'
certificate (everything else is kept).

This is the first step of running the site on an external NATS server or
cluster: steward site nats-config prints the servers' configuration, and
steward serve --server URL --services ... runs services against it, reading
the keys from the same data directory.

--hosts are the names and addresses clients and servers use to reach the
servers; the certificate names them besides localhost, loopback and this
machine's name. The CA's fingerprint is printed: enrollment tokens carry it,
and agents pin it.`,
		Example: `  steward site init --data /srv/steward --site HQ1 --hosts nats-1,nats-2,nats-3,nats.example.net`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			info, _, err := site.Init(abs, code, cmd.Flags().Changed("site"), splitList(hosts)...)
			if err != nil {
				return err
			}
			out := map[string]string{
				"site": info.Site, "data": abs, "caFingerprint": info.CAFingerprint,
				"ca": filepath.Join(abs, "tls", "ca.crt"), "identity": filepath.Join(abs, "admin.nk"),
			}
			return g.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "site\t%s\ndata\t%s\nCA\t%s\nCA fingerprint\t%s\nadministrator identity\t%s\n",
					info.Site, abs, out["ca"], info.CAFingerprint, out["identity"])
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "data", DefaultDataDir, "data directory to initialise")
	f.StringVar(&code, "site", "LAB", "site code, fixed at the first initialisation")
	f.StringVar(&hosts, "hosts", "", "comma-separated host names and addresses the servers' certificate names")
	return cmd
}

func newSiteNATSConfigCmd(g *globals) *cobra.Command {
	var dir, out, cluster string
	var sc site.ServerConfig
	var cl site.ClusterConfig
	cmd := &cobra.Command{
		Use:   "nats-config",
		Short: "Print the configuration of a stock nats-server serving the site",
		Long: `Print the nats-server configuration of an initialised site (steward site
init): the STEWARD account with JetStream, the system account, the services'
keys as the auth callout's users, the callout issuer (the admin service
decides everyone else), JetStream with sync_interval always, and TLS with
the site's certificate on every listener that is not loopback. It is the
configuration steward serve writes for its embedded server.

With --cluster the server is a node of a JetStream cluster: routes to every
node (this one included), mutually authenticated with the site's
certificates. Give each node its own name with nats-server --name.

With --leaf-listen the server accepts the leaf connections of child sites
(TLS off loopback); the auth callout admits them, so it has no
authorization of its own. JetStream runs in the site's own domain (its code)
so that it never spans a link between sites. A link to a parent is not
rendered: a child links from steward serve's embedded server.

The certificate paths are those of --data: mount the data directory at the
same path in the server's container.`,
		Example: `  steward site nats-config --data /data --store-dir /jetstream --out /data/nats.conf
  steward site nats-config --data /data --leaf-listen 0.0.0.0:7422 --out /data/nats.conf   # a parent of child sites
  steward site nats-config --data /data --cluster nats-1,nats-2,nats-3 --out /data/nats-cluster.conf
  nats-server -c /data/nats-cluster.conf --name nats-2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			info, keys, err := site.Load(abs)
			if err != nil {
				return err
			}
			if sc.StoreDir == "" {
				sc.StoreDir = filepath.Join(abs, "jetstream")
			}
			files := site.TLSPaths(abs)
			if cluster != "" || !contracts.LoopbackOnly(sc.Listen) {
				sc.TLS = &files
			}
			if sc.LeafListen != "" && !contracts.LoopbackOnly(sc.LeafListen) {
				sc.LeafTLS = &files
			}
			if cluster != "" {
				for _, r := range splitList(cluster) {
					if _, _, err := net.SplitHostPort(r); err != nil {
						r = net.JoinHostPort(r, "6222")
					}
					cl.Routes = append(cl.Routes, r)
				}
				sc.Cluster = &cl
			}
			conf, err := site.RenderServerConfig(info, keys, sc)
			if err != nil {
				return err
			}
			if out == "" {
				_, err := io.WriteString(g.stdout, conf)
				return err
			}
			return os.WriteFile(out, []byte(conf), 0o644)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "data", DefaultDataDir, "the site's data directory (steward site init)")
	f.StringVar(&sc.Listen, "listen", "0.0.0.0:4222", "client listener")
	f.StringVar(&sc.StoreDir, "store-dir", "", "JetStream store directory (default <data>/jetstream)")
	f.StringVar(&sc.Name, "name", "", "server name (default steward-<site>; cluster nodes: pass nats-server --name)")
	f.StringVar(&cluster, "cluster", "", "comma-separated routes of every cluster node, host[:port] (port 6222 by default)")
	f.StringVar(&cl.Listen, "cluster-listen", "0.0.0.0:6222", "route listener of a cluster node")
	f.StringVar(&sc.LeafListen, "leaf-listen", "", "accept child sites' leaf connections on HOST:PORT (e.g. 0.0.0.0:7422)")
	f.StringVar(&sc.LinkCompression, "link-compression", "auto", "compression of child sites' links: auto, off, fast, better, best (steward serve --help)")
	f.StringVar(&out, "out", "", "write the configuration to this file instead of stdout")
	return cmd
}

// siteStream is one line of steward site streams.
type siteStream struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"` // stream, kv or object
	Replicas int    `json:"replicas"`
	Leader   string `json:"leader,omitempty"`
	Current  int    `json:"current"` // replicas that are current (leader included)
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
}

func newSiteStreamsCmd(g *globals) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "streams",
		Short: "List the site's JetStream streams, buckets and object stores, with their replicas",
		Long: `List every JetStream stream of the site (key-value buckets and object stores
are streams too) with its replicas, its leader and how many replicas are
current, as the server sees them: on a cluster every one should have three
replicas, all current.

Only the site's services may use JetStream's API, so this command connects
as they do: with their key from the data directory (--data) of the site, on
the server --server names.`,
		Example: `  steward site streams --data /data --server nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222
  steward site streams --data /data -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			nc, err := site.Connect(abs, g.server, "steward-cli site streams")
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			list := []siteStream{}
			streams := js.ListStreams(ctx)
			for info := range streams.Info() {
				st := siteStream{Name: info.Config.Name, Kind: "stream", Replicas: info.Config.Replicas, Messages: info.State.Msgs, Bytes: info.State.Bytes}
				switch {
				case strings.HasPrefix(st.Name, "KV_"):
					st.Kind = "kv"
				case strings.HasPrefix(st.Name, "OBJ_"):
					st.Kind = "object"
				}
				if c := info.Cluster; c != nil {
					st.Leader = c.Leader
					if c.Leader != "" {
						st.Current++
					}
					for _, p := range c.Replicas {
						if p.Current && !p.Offline {
							st.Current++
						}
					}
				} else {
					st.Current = 1
				}
				list = append(list, st)
			}
			if err := streams.Err(); err != nil {
				return fmt.Errorf("list streams: %w", err)
			}
			slices.SortFunc(list, func(a, b siteStream) int { return strings.Compare(a.Name, b.Name) })
			return g.print(list, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tKIND\tREPLICAS\tCURRENT\tLEADER\tMESSAGES\tBYTES")
				for _, st := range list {
					fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%d\t%d\n", st.Name, st.Kind, st.Replicas, st.Current, dash(st.Leader), st.Messages, st.Bytes)
				}
			})
		},
	}
	cmd.Flags().StringVar(&dir, "data", DefaultDataDir, "the site's data directory: the services' key and the site CA")
	return cmd
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
