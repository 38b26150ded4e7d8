package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"golang.org/x/term"
)

const packagesHelp = `Packages are versioned sets of files that the site stores once, sends to the
sites below it and lets the clients of chosen collections download.

Content is split into 512 KiB chunks addressed by their SHA-256 and stored
once however many packages use them: a new version that shares most of its
files with the last one costs only the chunks that changed, on disk and on
every link. A version's manifest (paths, modes, sizes, chunks, hashes) is
signed by the site; a site receiving it verifies the signature with the key
it pinned when the sites were linked, and every chunk's hash, before the
version becomes visible. What fails verification is quarantined, never
installed.

Clients download a deployed version from their own site, verify every hash,
and keep it under <state-dir>/content/<package>/<version>/. Only clients in
a collection the version is deployed to may read it.`

// newPackagesCmd is `steward packages`.
func newPackagesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "packages",
		Aliases: []string{"package", "pkg"},
		Short:   "The content library: create packages, send them to sites, deploy them to clients",
		Long:    packagesHelp,
		Example: `  steward packages create tools --version 1.0 --source ./tools
  steward packages distribute tools --site CHD
  steward packages status tools
  steward packages deploy tools --collection Web`,
	}
	cmd.AddCommand(
		newPackagesCreateCmd(g),
		newPackagesListCmd(g),
		newPackagesShowCmd(g),
		newPackagesDeleteCmd(g),
		newPackagesDistributeCmd(g),
		newPackagesStatusCmd(g),
		newPackagesDeployCmd(g, true),
		newPackagesDeployCmd(g, false),
		newPackagesQuarantineCmd(g),
	)
	return cmd
}

func newPackagesQuarantineCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quarantine",
		Short: "What other sites sent that failed verification here",
		Long: `The despooler quarantines whatever a sending site offers that fails
verification: a manifest signed by an unknown site or with the wrong key, a
manifest with an unsafe path, a link escaping the package or a size over the
limits, a chunk whose SHA-256 is not its name or that the manifest does not
list. Nothing quarantined is ever installed; each entry also sent status
message 6001. Entries expire after 30 days.`,
		Example: `  steward packages quarantine list
  steward packages quarantine delete 0195a3c4-0000-7000-8000-0000000000a1`,
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List quarantined offers and chunks, newest first",
		Long:  `List the quarantine: when, what (an offer or a chunk), from which site, the package and version it claimed, why it was refused, and the size and SHA-256 of what was received.`,
		Example: `  steward packages quarantine list
  steward packages quarantine list -o json | jq -r '.[] | select(.from == "PAR") | .reason'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				list, err := c.QuarantineList(ctx)
				if err != nil {
					return err
				}
				return g.print(list, func(w io.Writer) { printQuarantine(w, list) })
			})
		},
	}
	del := &cobra.Command{
		Use:   "delete ID",
		Short: "Forget a quarantine entry",
		Long: `Forget a quarantine entry (IDs are in quarantine list). It is audited
(status 8007); what the entry described was never installed.`,
		Example: `  steward packages quarantine delete 0195a3c4-0000-7000-8000-0000000000a1`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				list, err := c.QuarantineDelete(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(list, func(w io.Writer) { printQuarantine(w, list) })
			})
		},
	}
	var dataFile string
	show := &cobra.Command{
		Use:   "show ID [--data FILE]",
		Short: "Show one quarantine entry and what was kept of it",
		Long: `Show one quarantine entry (IDs are in quarantine list). For a refused offer
the site keeps the first 256 KiB of what the sender sent: --data FILE writes
those bytes to FILE (created, not overwritten) to inspect them; -o json
carries them base64-encoded in "data". A refused chunk keeps no bytes: its
SHA-256 and size identify it.`,
		Example: `  steward packages quarantine show 0195a3c4-0000-7000-8000-0000000000a1
  steward packages quarantine show 0195a3c4-0000-7000-8000-0000000000a1 --data offer.json
  steward packages quarantine show 0195a3c4-0000-7000-8000-0000000000a1 -o json | jq -r .data | base64 -d`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				q, err := c.QuarantineShow(ctx, args[0])
				if err != nil {
					return err
				}
				if dataFile != "" {
					if len(q.Data) == 0 {
						return fmt.Errorf("quarantine entry %s kept no bytes (a refused chunk keeps none): nothing written to %s", q.Entry.ID, dataFile)
					}
					if err := writeNewFile(dataFile, q.Data); err != nil {
						return err
					}
				}
				return g.print(q, func(w io.Writer) { printQuarantineEntry(w, q, dataFile) })
			})
		},
	}
	show.Flags().StringVar(&dataFile, "data", "", "write the bytes kept of the entry to this new file")
	cmd.AddCommand(list, show, del)
	return cmd
}

// writeNewFile writes data to a file that must not exist yet (0600).
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func printQuarantineEntry(w io.Writer, q *contracts.QuarantineShowResponse, dataFile string) {
	e := q.Entry
	pkg := "-"
	if e.Package != "" {
		pkg = contracts.PackageKey(e.Package, e.Version)
	}
	fmt.Fprintf(w, "ID:\t%s\n", e.ID)
	fmt.Fprintf(w, "When:\t%s (%s)\n", e.Time.Local().Format(time.RFC3339), ago(e.Time))
	fmt.Fprintf(w, "What:\t%s from site %s\n", e.What, e.From)
	fmt.Fprintf(w, "Package:\t%s\n", pkg)
	if e.Digest != "" {
		fmt.Fprintf(w, "Manifest digest:\t%s\n", e.Digest)
	}
	if e.Chunk != "" {
		fmt.Fprintf(w, "Chunk claimed:\t%s\n", e.Chunk)
	}
	fmt.Fprintf(w, "Reason:\t%s (%s)\n", e.Reason, e.Code)
	fmt.Fprintf(w, "Received:\t%s, SHA-256 %s\n", bytesIEC(uint64(e.Size)), e.SHA256)
	kept := "none"
	if len(q.Data) > 0 {
		kept = bytesIEC(uint64(len(q.Data)))
		if q.Truncated {
			kept += " (the first part)"
		}
		if dataFile != "" {
			kept += ", written to " + dataFile
		} else {
			kept += " (--data FILE writes them)"
		}
	}
	fmt.Fprintf(w, "Bytes kept:\t%s\n", kept)
}

func printQuarantine(w io.Writer, list []contracts.QuarantineInfo) {
	fmt.Fprintln(w, "ID\tWHEN\tWHAT\tFROM\tPACKAGE\tSIZE\tREASON")
	for _, q := range list {
		pkg := "-"
		if q.Package != "" {
			pkg = contracts.PackageKey(q.Package, q.Version)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", q.ID, ago(q.Time), q.What, q.From, pkg, bytesIEC(uint64(q.Size)), q.Reason)
	}
}

// packageArg requires the one package name argument.
func packageArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 || args[0] == "" {
		return fmt.Errorf("%s needs one package name, got %d arguments", cmd.CommandPath(), len(args))
	}
	name, version, hasVersion := strings.Cut(args[0], "@")
	if err := contracts.ValidPackageName(name); err != nil {
		return err
	}
	if hasVersion {
		return contracts.ValidPackageVersion(version)
	}
	return nil
}

// packageRunE is the RunE of a command on one package, NAME or
// NAME@VERSION (packageRef): run gets the name, version the version.
func packageRunE(version *string, run func(cmd *cobra.Command, name string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		name, err := packageRef(args[0], version)
		if err != nil {
			return err
		}
		return run(cmd, name)
	}
}

// packageRef takes NAME or NAME@VERSION (as the site writes them) apart:
// the version, when given so, fills in --version, which may not say
// another.
func packageRef(arg string, version *string) (string, error) {
	name, v, ok := strings.Cut(arg, "@")
	if !ok {
		return arg, nil
	}
	if *version != "" && *version != v {
		return "", fmt.Errorf("%s says version %s, --version says %s: give one", arg, v, *version)
	}
	*version = v
	return name, nil
}

// barProgress shows a byte progress bar on a terminal (nothing otherwise).
type barProgress struct{ bar *progressbar.ProgressBar }

func (p barProgress) Uploaded(n int) { _ = p.bar.Add(n) }
func (p barProgress) Skipped(n int)  { _ = p.bar.Add(n) }

func newPackagesCreateCmd(g *globals) *cobra.Command {
	var version, source string
	cmd := &cobra.Command{
		Use:   "create NAME --version V --source DIR",
		Short: "Make a package version from a directory",
		Long: `Read DIR (regular files and symbolic links that stay inside it; anything else
is refused), split its files into chunks, upload only the chunks the site's
library lacks, then ask the site to sign and store the version. A progress
bar shows the bytes on a terminal. The version is visible only once it is
complete; a version that exists is refused (versions are immutable: make a
new one). A DIR that is a symbolic link is followed.

A version holds at most 10,000 files and links, and its manifest (each
file's path and SHA-256, and the SHA-256 of each of its 512 KiB chunks) at
most 720 KiB. The manifest is usually the limit met first: it fills at
some 3,500 small files with short paths, fewer with long ones, or at about
5 GiB of content. DIR over either limit is refused before anything is
uploaded: split it into several packages (or archive many small files
into one).

Before it signs, the site reads every file of the version back and checks
its hash: create waits --timeout plus a second per 32 MiB for its answer.
Without an answer by then the site may still finish: "steward packages show
NAME --version V" shows the version once it exists.`,
		Example: `  steward packages create tools --version 1.0 --source ./tools
  steward packages create tools --version 1.1 --source ./tools -o json`,
		Args: packageArg,
		RunE: packageRunE(&version, func(cmd *cobra.Command, name string) error {
			if err := contracts.ValidPackageVersion(version); err != nil {
				return fmt.Errorf("--version: %w", err)
			}
			if source == "" {
				return fmt.Errorf("--source DIR is required")
			}
			src, err := client.ScanPackage(source)
			if err != nil {
				return err
			}
			// What the site would refuse after the upload is refused before it.
			if err := src.Check(name, version); err != nil {
				return err
			}
			// Uploading takes as long as it takes: each request has its own
			// deadline (rpc.DefaultTimeout), the whole command none.
			c, err := func() (*client.Client, error) {
				ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
				defer cancel()
				return g.connect(ctx)
			}()
			if err != nil {
				return explain(err)
			}
			defer c.Close()
			visible := g.output == "table" && isTerminal(os.Stderr)
			bar := progressbar.NewOptions64(src.Size,
				progressbar.OptionSetWriter(g.stderr),
				progressbar.OptionSetVisibility(visible),
				progressbar.OptionShowBytes(true),
				progressbar.OptionSetDescription("uploading "+name),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish(),
			)
			uploaded, err := c.PackageUpload(cmd.Context(), src, barProgress{bar})
			_ = bar.Finish()
			if err != nil {
				return explain(err)
			}
			// The site reads every file back and checks its hash before it
			// signs: --timeout, and the time that takes for this size.
			wait := createWait(g.timeout, src)
			ctx, cancel := context.WithTimeout(cmd.Context(), wait)
			defer cancel()
			info, err := c.PackageCreate(ctx, name, version, src)
			if err != nil {
				if errors.Is(ctx.Err(), context.DeadlineExceeded) && cmd.Context().Err() == nil {
					return fmt.Errorf("the site did not answer within %s whether it created %s %s (%s); it may still be storing and signing it: "+
						"`steward packages show %s --version %s` shows it once it exists (running this command again then says it exists)",
						wait.Round(time.Second), name, version, bytesIEC(uint64(src.Size)), name, version)
				}
				return explain(err)
			}
			return g.print(info, func(w io.Writer) {
				fmt.Fprintf(w, "created %s %s: %s in %s, %d of %d chunks uploaded (the site had the rest)\n",
					info.Package, info.Version, plural(info.Files, "file"), bytesIEC(uint64(info.Size)), uploaded, src.Chunks())
				fmt.Fprintf(w, "digest %s\n", info.Digest)
			})
		}),
	}
	cmd.Flags().StringVar(&version, "version", "", "the version to make, e.g. 1.0 (required)")
	cmd.Flags().StringVar(&source, "source", "", "the directory to package (required)")
	return cmd
}

// createWait is how long create waits for the site's answer: --timeout,
// and the time the site takes to read the version back and hash it
// (client.PackageCreateTime).
func createWait(timeout time.Duration, src *client.PackageSource) time.Duration {
	return timeout + client.PackageCreateTime(src)
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

func newPackagesListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list [NAME | NAME@VERSION]",
		Short: "List package versions",
		Long: `List every package version in the site's library (or every version of
NAME, or the one version NAME@VERSION), with where it came from, its size
and its digest. A version that is not there is an error; a NAME without
versions lists nothing.`,
		Example: `  steward packages list
  steward packages list tools -o json
  steward packages list tools@1.0`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			return packageArg(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version := "", ""
			if len(args) == 1 {
				var err error
				if name, err = packageRef(args[0], &version); err != nil {
					return err
				}
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				list, err := c.PackageList(ctx, name)
				if err != nil {
					return err
				}
				if version != "" {
					list = slices.DeleteFunc(list, func(p contracts.PackageInfo) bool { return p.Version != version })
					if len(list) == 0 {
						return fmt.Errorf("no package %s (steward packages list %s shows its versions)", contracts.PackageKey(name, version), name)
					}
				}
				return g.print(list, func(w io.Writer) {
					fmt.Fprintln(w, "PACKAGE\tVERSION\tSIZE\tFILES\tSITE\tFROM\tCREATED\tDIGEST")
					for _, p := range list {
						from := p.From
						if from == "" {
							from = "-"
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", p.Package, p.Version, bytesIEC(uint64(p.Size)), p.Files, p.Site, from, ago(p.Created), short(p.Digest))
					}
				})
			})
		},
	}
}

func newPackagesShowCmd(g *globals) *cobra.Command {
	var version string
	cmd := &cobra.Command{
		Use:   "show NAME [--version V]",
		Short: "Show a package version: its files and deployments",
		Long:  `Show one version (the newest without --version): its files with modes, sizes and hashes, its links, and the collections it is deployed to.`,
		Example: `  steward packages show tools
  steward packages show tools --version 1.0 -o json`,
		Args: packageArg,
		RunE: packageRunE(&version, func(cmd *cobra.Command, name string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.PackageShow(ctx, name, version)
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) {
					p := resp.Package
					fmt.Fprintf(w, "Package:\t%s %s\n", p.Package, p.Version)
					fmt.Fprintf(w, "Created:\t%s by %s at site %s\n", p.Created.Local().Format(time.RFC3339), p.CreatedBy, p.Site)
					fmt.Fprintf(w, "Size:\t%s in %s, %d chunks\n", bytesIEC(uint64(p.Size)), plural(p.Files, "file"), p.Chunks)
					fmt.Fprintf(w, "Digest:\t%s\n", p.Digest)
					for _, d := range resp.Deployments {
						fmt.Fprintf(w, "Deployed to:\t%s (by %s, %s)\n", d.Collection.Name, d.By, ago(d.Created))
					}
					fmt.Fprintln(w, "\nMODE\tSIZE\tPATH\tSHA256")
					for _, f := range resp.Files {
						fmt.Fprintf(w, "%04o\t%d\t%s\t%s\n", f.Mode, f.Size, f.Path, f.SHA256)
					}
					for _, l := range resp.Links {
						fmt.Fprintf(w, "link\t-\t%s -> %s\t\n", l.Path, l.Target)
					}
				})
			})
		}),
	}
	cmd.Flags().StringVar(&version, "version", "", "the version (default: the newest)")
	return cmd
}

func newPackagesDeleteCmd(g *globals) *cobra.Command {
	var version string
	var all bool
	cmd := &cobra.Command{
		Use:   "delete NAME (--version V | --all)",
		Short: "Delete a package version, or every version",
		Long: `Delete a version from the site's library (its chunks stay while another
version uses them). A version deployed to a collection is refused: undeploy
it first. Clients keep what they downloaded.`,
		Example: `  steward packages delete tools --version 1.0
  steward packages delete tools --all`,
		Args: packageArg,
		RunE: packageRunE(&version, func(cmd *cobra.Command, name string) error {
			switch {
			case version != "" && all:
				return fmt.Errorf("--version (or NAME@VERSION) and --all exclude each other: --version V deletes one version, --all every version of %s", name)
			case version == "" && !all:
				return fmt.Errorf("say which: --version V, or --all for every version")
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				gone, err := c.PackageDelete(ctx, name, version)
				if err != nil {
					return err
				}
				return g.print(gone, func(w io.Writer) {
					for _, p := range gone {
						fmt.Fprintf(w, "deleted %s %s\n", p.Package, p.Version)
					}
				})
			})
		}),
	}
	cmd.Flags().StringVar(&version, "version", "", "the version to delete")
	cmd.Flags().BoolVar(&all, "all", false, "delete every version")
	return cmd
}

func newPackagesDistributeCmd(g *globals) *cobra.Command {
	var version string
	var sites []string
	var cancel bool
	cmd := &cobra.Command{
		Use:   "distribute NAME --site CODE [--site CODE...] [--cancel]",
		Short: "Send a package version to other sites, or stop sending it",
		Long: `Queue a version (the newest without --version) for sites linked below this
one. The sender offers the signed manifest, sends only the chunks each site
lacks, within the route's rate and schedule ("steward routes"), retrying
with backoff; "steward packages status" follows it.

--cancel stops sending instead: the distribution of the version to each
--site is deleted, whatever its state (without --version: of every version
of NAME that goes to those sites), and the sender lets it go. A
distribution to a site that is gone is retried until it is cancelled; the
site need not be linked any more. A site keeps what it installed. Needs
Package:Distribute, as distributing does; audited (status 8009).

--site here names the destination sites: it hides the global --site (the
site this command talks to). With an identity file that does not say its
site, set STEWARD_SITE or add a "# site: CODE" line to the file.`,
		Example: `  steward packages distribute tools --site CHD
  steward packages distribute tools --version 1.0 --site CHD --site BRN
  steward packages distribute tools --site CH2 --cancel`,
		Args: packageArg,
		RunE: packageRunE(&version, func(cmd *cobra.Command, name string) error {
			if len(sites) == 0 {
				return fmt.Errorf("--site CODE is required (the destination site; repeat for several)")
			}
			if err := g.siteNotShadowed(sites); err != nil {
				return err
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if cancel {
					gone, err := c.PackageCancel(ctx, name, version, sites)
					if err != nil {
						return err
					}
					return g.print(gone, func(w io.Writer) { printCancelled(w, gone) })
				}
				resp, err := c.PackageDistribute(ctx, name, version, sites)
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) { printPackageStatus(w, resp) })
			})
		}),
	}
	cmd.Flags().StringVar(&version, "version", "", "the version (default: the newest; with --cancel, every version sent to the sites)")
	cmd.Flags().StringSliceVar(&sites, "site", nil, "destination site code (repeatable); hides the global --site")
	cmd.Flags().BoolVar(&cancel, "cancel", false, "stop sending to the sites: delete their distributions")
	return cmd
}

// printCancelled lists cancelled distributions as they stood.
func printCancelled(w io.Writer, gone []contracts.PackageCancelled) {
	for _, j := range gone {
		was := j.State
		if j.State == contracts.ContentInstalled {
			was += ", the site keeps it"
		} else if j.Attempts > 0 {
			was += fmt.Sprintf(", %s", plural(j.Attempts, "attempt"))
		}
		fmt.Fprintf(w, "cancelled sending %s %s to %s (was %s)\n", j.Package, j.Version, j.Site, was)
	}
}

func newPackagesStatusCmd(g *globals) *cobra.Command {
	var version string
	cmd := &cobra.Command{
		Use:   "status NAME [--version V]",
		Short: "Where a package version stands at each site and client",
		Long: `Per destination site: pending, sending, installed or failed, bytes sent of
those to send, the digest the site verified, the last error. Per client of
the collections it is deployed to: installed, failed (why) or pending (not
reported yet). Clients that reported it stay listed after an undeploy:
they keep what they downloaded.`,
		Example: `  steward packages status tools
  steward packages status tools -o json | jq '.sites[] | select(.state != "installed")'`,
		Args: packageArg,
		RunE: packageRunE(&version, func(cmd *cobra.Command, name string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.PackageStatus(ctx, name, version)
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) { printPackageStatus(w, resp) })
			})
		}),
	}
	cmd.Flags().StringVar(&version, "version", "", "the version (default: the newest)")
	return cmd
}

func printPackageStatus(w io.Writer, resp contracts.PackageStatusResponse) {
	p := resp.Package
	fmt.Fprintf(w, "%s %s (%s, digest %s)\n", p.Package, p.Version, bytesIEC(uint64(p.Size)), short(p.Digest))
	if len(resp.Sites) > 0 {
		fmt.Fprintln(w, "SITE\tSTATE\tSENT\tCHUNKS\tVERIFIED\tATTEMPTS\tUPDATED\tERROR")
		for _, s := range resp.Sites {
			fmt.Fprintf(w, "%s\t%s\t%s/%s\t%d/%d\t%s\t%d\t%s\t%s\n", s.Site, s.State, bytesIEC(uint64(s.Bytes)), bytesIEC(uint64(s.Total)),
				s.Chunks, s.ChunksTotal, dash(short(s.Verified)), s.Attempts, ago(s.Updated), dash(s.Error))
		}
	}
	if len(resp.Clients) > 0 {
		fmt.Fprintln(w, "CLIENT\tSTATE\tBYTES\tUPDATED\tERROR")
		for _, c := range resp.Clients {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", c.Client.Name, c.State, bytesIEC(uint64(c.Bytes)), ago(c.Updated), dash(c.Error))
		}
	}
}

func newPackagesDeployCmd(g *globals, deploy bool) *cobra.Command {
	var version, collection string
	use, short, verb := "deploy", "Let the clients of a collection download a package version", "deployed %s %s to %s"
	long := `Deploy a version (the newest without --version) to a collection: its
clients are told at once, fetch it from the site, verify every hash and
install it under <state-dir>/content/<package>/<version>/. Clients that join
the collection later fetch it when they next ask. Only clients of the
collections a version is deployed to may read it.`
	if !deploy {
		use, short, verb = "undeploy", "Stop deploying a package version to a collection", "undeployed %s %s from %s"
		long = `Remove a deployment. Clients keep what they downloaded; the site stops
serving the version to the collection's clients.`
	}
	cmd := &cobra.Command{
		Use:     use + " NAME --collection C",
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  steward packages %s tools --collection Web\n  steward packages %s tools --version 1.0 --collection \"Linux web\"", use, use),
		Args:    packageArg,
		RunE: packageRunE(&version, func(cmd *cobra.Command, name string) error {
			if collection == "" {
				return fmt.Errorf("--collection is required")
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.PackageDeploy(ctx, name, version, collection, deploy)
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) {
					d := resp.Deployment
					fmt.Fprintf(w, verb, d.Package, d.Version, d.Collection.Name)
					if deploy {
						fmt.Fprintf(w, ": %s told to fetch it", plural(resp.Clients, "client"))
					}
					fmt.Fprintln(w)
				})
			})
		}),
	}
	cmd.Flags().StringVar(&version, "version", "", "the version (default: the newest)")
	cmd.Flags().StringVar(&collection, "collection", "", "collection name or id (required)")
	return cmd
}

// newRoutesCmd is `steward routes`.
func newRoutesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "How the sender sends content to each site: rate limit and schedule",
		Long: `A route is how this site's sender sends to one destination site: at most a
rate (bytes per second) and only within a schedule. Outside the schedule the
sender pauses and resumes where it stopped. Without a route a site gets
content at full speed, at any time.`,
		Example: `  steward routes set CHD --rate 20MB/s --schedule 'Mon-Fri 18:00-06:00'
  steward routes list`,
	}
	set := &cobra.Command{
		Use:   "set SITE [--rate R] [--schedule S]",
		Short: "Set the rate limit and schedule to a site",
		Long: `Set the route to SITE. A flag not given keeps the route's current value:
--rate alone changes the rate and keeps the schedule, --schedule alone the
other way round.

--rate takes a size per second: 500KB/s, 20MB/s, 1GiB/s (KB, MB, GB are
powers of 1000; KiB, MiB, GiB of 1024); "unlimited" (or 0) removes the
limit. --schedule takes days and a time window in the site's local time:
"Mon-Fri 18:00-06:00" (a window past midnight belongs to the day it
starts), "Sat,Sun 00:00-24:00", "daily 22:00-05:00"; "always" (or "")
removes the window. "steward routes delete SITE" clears both.`,
		Example: `  steward routes set CHD --rate 20MB/s --schedule 'Mon-Fri 18:00-06:00'
  steward routes set CHD --schedule 'Sat,Sun 00:00-24:00'     # the rate stays 20MB/s
  steward routes set CHD --rate unlimited                      # the schedule stays
  steward routes set CHD --schedule always`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			site := args[0]
			rateSet, schedSet := cmd.Flags().Changed("rate"), cmd.Flags().Changed("schedule")
			if !rateSet && !schedSet {
				return fmt.Errorf("say what to set: --rate, --schedule or both (steward routes delete %s returns to unlimited, always)", site)
			}
			var rate int64
			if rateSet {
				text, _ := cmd.Flags().GetString("rate")
				var err error
				if rate, err = parseRate(text); err != nil {
					return fmt.Errorf("--rate: %w", err)
				}
			}
			schedule, _ := cmd.Flags().GetString("schedule")
			if strings.TrimSpace(schedule) == "always" {
				schedule = ""
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if !rateSet || !schedSet {
					// What is not given stays as it is.
					cur, err := c.RouteList(ctx)
					if err != nil {
						return err
					}
					for _, r := range cur {
						if r.Site != site {
							continue
						}
						if !rateSet {
							rate = r.Rate
						}
						if !schedSet {
							schedule = r.Schedule
						}
					}
				}
				routes, err := c.RouteSet(ctx, site, rate, schedule)
				if err != nil {
					return err
				}
				return g.print(routes, func(w io.Writer) { printRoutes(w, routes) })
			})
		},
	}
	set.Flags().String("rate", "", `bytes per second, e.g. 20MB/s; "unlimited" or 0: no limit (default: the route's current rate)`)
	set.Flags().String("schedule", "", `when the sender may send, e.g. 'Mon-Fri 18:00-06:00'; "always": any time (default: the route's current schedule)`)
	list := &cobra.Command{
		Use:     "list",
		Short:   "List routes with their backlog",
		Long:    `List the route to every site: rate, schedule, whether the schedule is open now, and the bytes queued for it.`,
		Example: `  steward routes list -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				routes, err := c.RouteList(ctx)
				if err != nil {
					return err
				}
				return g.print(routes, func(w io.Writer) { printRoutes(w, routes) })
			})
		},
	}
	del := &cobra.Command{
		Use:   "delete SITE",
		Short: "Delete the route to a site: unlimited, always open again",
		Long: `Delete the route to SITE: the sender goes back to sending to it at full
speed, at any time. Audited (status 8008).`,
		Example: `  steward routes delete CHD`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				routes, err := c.RouteDelete(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(routes, func(w io.Writer) { printRoutes(w, routes) })
			})
		},
	}
	cmd.AddCommand(set, list, del)
	return cmd
}

func printRoutes(w io.Writer, routes []contracts.RouteInfo) {
	fmt.Fprintln(w, "SITE\tRATE\tSCHEDULE\tOPEN\tBACKLOG\tUPDATED")
	for _, r := range routes {
		rate := "unlimited"
		if r.Rate > 0 {
			rate = bytesIEC(uint64(r.Rate)) + "/s"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%t\t%s\t%s\n", r.Site, rate, dash(r.Schedule), r.Open, bytesIEC(uint64(r.Backlog)), ago(r.Updated))
	}
}

// maxRate bounds a route's rate: 1 EB/s is beyond any link, and far
// enough from int64's end that no rounding overflows.
const maxRate = 1e18

// parseRate reads "20MB/s", "512KiB/s", "1000" (bytes per second), and
// "unlimited" (0).
func parseRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "unlimited" {
		return 0, nil
	}
	t = strings.TrimSuffix(t, "/s")
	if t == "" {
		return 0, fmt.Errorf("%q: want a size per second such as 20MB/s", s)
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || v < 0 || math.IsNaN(v) {
		return 0, fmt.Errorf("%q: want a size per second such as 20MB/s", s)
	}
	if v*float64(mult) > maxRate {
		return 0, fmt.Errorf("%q: too large, at most 1EB/s; use unlimited (or 0) for no limit", s)
	}
	r := int64(v * float64(mult))
	if v > 0 && r < 1024 {
		return 0, fmt.Errorf("%q: a rate under 1 KiB/s would never finish; use unlimited (or 0) for no limit", s)
	}
	return r, nil
}

// short abbreviates a digest for tables.
func short(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
