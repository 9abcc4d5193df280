package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// examplesConfig is what `fsmirror examples` prints: a config file with a
// worked [[sync]] block for each kind of destination, commented. A test
// checks that it parses.
const examplesConfig = `# fsmirror config file: fsmirror run -c FILE, fsmirror start -c FILE.
# Check it with: fsmirror check -c FILE
#
# Each [[sync]] block mirrors its sources to its destinations, live: an
# initial sync, then every change as it happens. Keys left out take the
# defaults of 'fsmirror watch'. Strings may use $VAR and ${VAR} from the
# environment ($$ for a literal $), except exclude patterns. Relative paths
# are relative to this file's directory.

# Where the index of each destination is kept (what it holds, so that a
# restart sends only what changed). Default: /var/lib/fsmirror for root,
# else ~/.local/state/fsmirror.
# state-dir = "/var/lib/fsmirror"

# 1. A local directory (another disk, an NFS or SMB mount).
[[sync]]
name = "www-local"                  # in logs, status and metrics; default: the source's base name
source = "/srv/www"
destination = "/mnt/backup/www"
exclude = ["*.swp", "*~", ".cache/"] # gitignore syntax
# exclude-from = "/etc/fsmirror/www.exclude"
delay = "200ms"                     # wait for a path to be quiet this long (default: at once)
max-delay = "5s"                    # a file still open for writing is copied after this long anyway
max-size = "1G"                     # leave out larger files (min-size too); k, m, g, t: powers of 1024
delete = true                       # delete what the source no longer has (the default)

# 2. Other hosts over SSH, with fsmirror on the far side (the agent): renames
#    are renames there, and only changed files are sent. One source, three
#    destinations: each has its own queue, and one that is down holds up no
#    other.
[[sync]]
name = "web-nodes"
source = "/srv/www"
destination = [
  "deploy@web1:/srv/www",
  "deploy@web2:/srv/www",
  "ssh://deploy@web3:2222/srv/www",
]
ssh = "ssh -i /etc/fsmirror/id_ed25519 -o StrictHostKeyChecking=yes"
remote-fsmirror = "/usr/local/bin/fsmirror"  # or install-agent = true: copy this binary there
compress = true
exclude = ["*.tmp"]

# 3. An rsync daemon's module (rsync://), for a NAS with rsync but no fsmirror.
#    Each batch of changed paths is one rsync run, never one per file.
[[sync]]
name = "nas"
source = ["/home/alice", "/home/bob"]   # several sources: each goes to DEST/<base name>
destination = "rsync://backup@nas/mirror/home"
password-file = "/etc/fsmirror/nas.password"  # mode 600
bwlimit = "10m"
rsync-processes = 2
delete = false                      # keep what was deleted here: an archive
rescan-interval = "24h"             # compare everything once a day

# 4. rsync over ssh, to a host that has rsync but no fsmirror.
[[sync]]
name = "old-server"
source = "/srv/data"
destination = "deploy@old-server:/var/data"
rsync = true
ssh = "ssh -p 2222"
rsync-args = ["--chmod=Dg+s"]

# 5. The receiver of 'fsmirror serve' on another host (TLS, no ssh). The
#    fingerprint is what 'fsmirror serve init' printed there, and the token
#    file must exist when the config is read: uncomment once you have both.
# [[sync]]
# name = "receiver"
# source = "/srv/www"
# destination = "fsmirror://mirror.example.net:8873/www"
# fingerprint = "HEX printed by fsmirror serve init"
# token-file = "/etc/fsmirror/receiver.token"

# 6. Many hosts into one backup host, keeping each source's absolute path:
#    /srv/backup/etc, /srv/backup/home/carol.
[[sync]]
name = "configs"
source = ["/etc", "/home/carol"]
destination = "/srv/backup"
relative = true
min-size = 1                         # leave out empty files
`

func newExamplesCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "examples",
		Short: "Print an example config file, with a sync for each kind of destination",
		Long: `Print a commented config file with a worked [[sync]] block for each kind of
destination: a local directory, hosts over SSH with the fsmirror agent, an
rsync daemon, rsync over ssh, and many sources into one backup tree. Start
from it: fsmirror examples > fsmirror.toml, edit, then fsmirror check -c
fsmirror.toml.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprint(a.stdout, examplesConfig)
			return err
		},
	}
}
