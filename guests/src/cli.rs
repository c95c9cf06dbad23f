//! xenprov-guest's command line: the verbs and their flags (clap), with the checks of the flags that
//! reach generated files.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use xenprov_core::answer::{check_lvm_name, check_ssh_key};
use xenprov_core::guest::{GuestType, Method, check_cpu_list, check_guest_name, check_package};
use xenprov_core::net::{self, Cidr};
use xenprov_core::password;
use xenprov_core::size::Size;
use xenprov_guest::lifecycle::Changes;
use xenprov_guest::storage;
use xenprov_registry::settings;

#[derive(Parser)]
#[command(
    version,
    about = "Define, install and run Xen guests (PV, PVH, HVM) on this dom0",
    after_help = xenprov_core::exit::HELP
)]
pub struct Cli {
    /// Host settings for guests.
    #[arg(long, default_value = settings::DEFAULT_PATH, global = true)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub verb: Verb,
}

/// A flag that reaches a definition, checked by the function that checks its key in a definition
/// file, so that clap's error names the flag; the definition the flags make is then read like
/// any file, for what no single flag can tell (the OS's minimum sizes, the host's free space).
fn checked(
    check: fn(&str) -> Result<(), String>,
) -> impl Fn(&str) -> Result<String, String> + Clone + Send + Sync + 'static {
    move |s: &str| check(s).map(|()| s.to_string())
}

fn size_text(s: &str) -> Result<(), String> {
    s.parse::<Size>().map(drop)
}

fn size(s: &str) -> Result<Size, String> {
    s.parse::<Size>()
}

fn ipv4(s: &str) -> Result<(), String> {
    net::parse_ipv4(s).map(drop)
}

#[derive(Clone, Copy, ValueEnum)]
pub enum What {
    /// The kickstart of a RHEL-family guest.
    Kickstart,
    /// The preseed of a Debian guest.
    Preseed,
    /// The xl config.
    Xl,
    /// The libvirt domain XML.
    Libvirt,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum NetworkAction {
    /// Make the NAT bridge, VLAN bridges, proxy ARP, nftables rules and DHCP reservations what
    /// the guests' definitions need (run at boot by xenprov-guest-network.service).
    Apply,
    /// Print what the guests' definitions need of the host, and the nftables ruleset.
    Show,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SnapshotAction {
    /// Take a snapshot of the disk as it is now.
    Create,
    /// The snapshots, with how full each one's copy-on-write space is.
    List,
    /// Put the disk back as it was at the snapshot (the guest off); the snapshot is used up.
    Rollback,
    /// Delete a snapshot.
    Rm,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Phase {
    Install,
    Run,
}

#[derive(Args, Default)]
pub struct DefinitionFlags {
    /// OS profile, e.g. debian12, rocky9.
    #[arg(long)]
    pub os: Option<String>,
    /// pv, pvh or hvm.
    #[arg(long = "type", value_parser = checked(|s| s.parse::<GuestType>().map(drop)))]
    pub kind: Option<String>,
    /// installer (the OS's own, from a preseed or kickstart) or debootstrap (Debian, written by
    /// the dom0 straight into its disk) [default: installer].
    #[arg(long, value_parser = checked(|s| s.parse::<Method>().map(drop)))]
    pub method: Option<String>,
    /// Memory, e.g. 2G (at least what the OS's installer needs).
    #[arg(long, value_parser = checked(size_text))]
    pub memory: Option<String>,
    /// Virtual CPUs, 1 to 128 [default: 1].
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// Size of its disk, e.g. 20G.
    #[arg(long, value_parser = checked(size_text))]
    pub disk: Option<String>,
    /// Volume group for its disk [default: vg from the config, dsk].
    #[arg(long, value_parser = checked(|s| check_lvm_name(s, "volume group")))]
    pub vg: Option<String>,
    /// Bridge its NIC is plugged into [default: xenbr0].
    #[arg(long, value_parser = checked(net::check_ifname))]
    pub bridge: Option<String>,
    /// Its NIC's MAC, aa:bb:cc:dd:ee:ff [default: derived from the name, in Xen's 00:16:3e].
    #[arg(long, value_parser = checked(|s| net::parse_mac(s).map(drop)))]
    pub mac: Option<String>,
    /// A crypt(3) hash ($6$, $y$); without it a terminal asks for a password and hashes it.
    #[arg(long, value_parser = checked(password::check_crypt_hash))]
    pub root_password_hash: Option<String>,
    /// A public key for root's authorized_keys, e.g. "ssh-ed25519 AAAA... me@host" (repeatable).
    #[arg(long = "ssh-key", value_parser = checked(check_ssh_key))]
    pub ssh_keys: Vec<String>,
    /// A package to install besides the OS's minimal set (repeatable).
    #[arg(long = "package", value_parser = checked(check_package))]
    pub packages: Vec<String>,
    /// Static address with prefix, e.g. 192.0.2.20/24 (default: DHCP).
    #[arg(long, value_parser = checked(|s| s.parse::<Cidr>().map(drop)))]
    pub ip: Option<String>,
    /// Gateway of the static address, in its subnet.
    #[arg(long, requires = "ip", value_parser = checked(ipv4))]
    pub gateway: Option<String>,
    /// Name server for the static address (repeatable; at least one with --ip).
    #[arg(long, requires = "ip", value_parser = checked(ipv4))]
    pub dns: Vec<String>,
    /// A script run in the installed system at the end of the install.
    #[arg(long)]
    pub post_install: Option<PathBuf>,
    /// Start it with the host (a link in /etc/xen/auto).
    #[arg(long)]
    pub autostart: bool,
}

/// `set`'s flags: what changes, the rest as it is.
#[derive(Args)]
pub struct SetFlags {
    /// Memory, e.g. 768M (at most maxmem while it runs).
    #[arg(long, value_parser = size)]
    memory: Option<Size>,
    /// The most memory it may be given without a reboot (applies at its next boot).
    #[arg(long, value_parser = size)]
    maxmem: Option<Size>,
    /// vCPUs (at most the host's physical CPUs).
    #[arg(long)]
    vcpus: Option<u32>,
    /// Physical CPUs its vCPUs may run on, e.g. 0-1 or 0,2.
    #[arg(long, value_parser = checked(check_cpu_list))]
    cpus: Option<String>,
    /// credit2 weight, 1 to 65535 (Xen's default 256).
    #[arg(long)]
    weight: Option<u32>,
    /// credit2 cap in percent of one physical CPU, 0 for none.
    #[arg(long)]
    cap: Option<u32>,
}

impl From<SetFlags> for Changes {
    fn from(f: SetFlags) -> Changes {
        Changes {
            memory: f.memory,
            maxmem: f.maxmem,
            vcpus: f.vcpus,
            cpus: f.cpus,
            weight: f.weight,
            cap: f.cap,
        }
    }
}

// Parsed once per run; boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Verb {
    /// Print a guest's kickstart, preseed, xl config or libvirt XML; touches nothing.
    Render {
        /// The guest definition (TOML) to render.
        #[arg(long)]
        from: PathBuf,
        /// What to print.
        what: What,
        /// For xl and libvirt: the install phase (installer kernel) or the run phase (own disk).
        #[arg(long, value_enum, default_value = "install")]
        phase: Phase,
        /// The repo server URL as guests see it (default: repo-url from the config).
        #[arg(long, value_parser = settings::check_url)]
        repo_url: Option<String>,
    },
    /// Create a guest and install it; prompts for what is missing when on a terminal.
    New {
        /// The guest's name: its Xen domain, host name and LV (NAME-disk).
        #[arg(value_parser = checked(check_guest_name))]
        name: String,
        /// A guest definition file instead of flags.
        #[arg(long, conflicts_with_all = ["os", "kind", "memory", "disk"])]
        from: Option<PathBuf>,
        #[command(flatten)]
        flags: DefinitionFlags,
        /// Return once the installer boots; `xenprov-guest wait NAME` finishes the job.
        #[arg(long)]
        no_wait: bool,
    },
    /// Follow an install to its end and start the guest from its own disk.
    Wait {
        /// The guest being installed.
        name: String,
    },
    /// Guests with their state, memory, vCPUs and uptime.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One guest: its definition, state, configs and install progress.
    Show {
        /// The guest to show.
        name: String,
        /// Print the details as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a guest: its configs, autostart link and (unless kept) its disk. Stops its installer;
    /// a guest running from its own disk must be shut down first, or destroyed with --force.
    Rm {
        /// The guest to delete.
        name: String,
        /// Keep its logical volume (NAME-disk) and the data on it.
        #[arg(long)]
        keep_disk: bool,
        /// Destroy it even when it runs from its own disk.
        #[arg(long)]
        force: bool,
    },
    /// Start an installed guest from its own disk.
    Start {
        /// The guest to start.
        name: String,
    },
    /// Shut a guest down cleanly; destroy it if it is still up after the timeout.
    Stop {
        /// The guest to stop.
        name: String,
        /// How long the guest has to shut itself down, e.g. 90s or 5m.
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Reboot a running guest (it shuts down and Xen starts it again).
    Reboot {
        /// The guest to reboot.
        name: String,
    },
    /// End a guest's domain at once, as pulling its power would.
    Destroy {
        /// The guest to destroy.
        name: String,
    },
    /// Stop scheduling a running guest's vCPUs; its memory stays.
    Pause {
        /// The guest to pause.
        name: String,
    },
    /// Let a paused guest run again.
    Unpause {
        /// The guest to unpause.
        name: String,
    },
    /// Attach to a guest's console (leave with Ctrl-]).
    Console {
        /// The guest whose console to attach to.
        name: String,
    },
    /// Save a running guest's memory to FILE (xl save); the domain ends. `restore FILE` resumes it.
    Save {
        /// The guest to save.
        name: String,
        /// The file to write; refused when it exists.
        file: PathBuf,
    },
    /// Resume a guest from a file that `save` wrote, or bring back a guest from a file that
    /// `backup` wrote (definition and disk, each chunk checked before it is written).
    Restore {
        /// A file of `save` or of `backup`, told apart by their first bytes.
        file: PathBuf,
    },
    /// Change a guest's memory, vCPUs, pinning and scheduling: live where Xen allows, and kept in
    /// its definition for its next boot.
    Set {
        /// The guest to change.
        name: String,
        #[command(flatten)]
        changes: SetFlags,
    },
    /// Grow a guest's disk (live: the guest's root grows with it) or shrink it (the guest off,
    /// file system first).
    Resize {
        /// The guest whose disk to resize.
        name: String,
        /// The disk's new size, e.g. 8G.
        #[arg(value_parser = size)]
        size: Size,
    },
    /// LVM snapshots of a guest's disk: create, list, rollback, rm.
    Snapshot {
        /// The guest whose disk to snapshot.
        name: String,
        /// What to do.
        action: SnapshotAction,
        /// The snapshot's name (for create, rollback and rm).
        #[arg(value_parser = checked(storage::check_snapshot_name))]
        snapshot: Option<String>,
        /// Room for what changes after the snapshot [default: a fifth of the disk].
        #[arg(long, value_parser = size)]
        size: Option<Size>,
    },
    /// Write a guest's definition and disk to FILE, compressed and checksummed; a backup that
    /// stopped goes on where it stopped. A running guest is read through a snapshot.
    Backup {
        /// The guest to back up.
        name: String,
        /// The backup file.
        file: PathBuf,
    },
    /// Mount a stopped guest's partition on DIR in the dom0, read-only unless --rw.
    Mount {
        /// The guest whose disk to mount.
        name: String,
        /// Where to mount it.
        dir: PathBuf,
        /// Mount it writable.
        #[arg(long)]
        rw: bool,
        /// The partition to mount.
        #[arg(long, default_value_t = 1)]
        partition: u32,
    },
    /// Undo `mount`.
    Umount {
        /// The guest whose disk to unmount.
        name: String,
    },
    /// What each domain uses, refreshed: CPU %, memory, disk and network I/O (like xm top).
    Top {
        /// Print each refresh as one line of JSON.
        #[arg(long)]
        json: bool,
        /// Plain rows, no screen control (for scripts and logs).
        #[arg(short, long)]
        batch: bool,
        /// Stop after this many refreshes [default: 1 with --json or --batch, else never].
        #[arg(short = 'n', long)]
        iterations: Option<u32>,
        /// Time between refreshes, e.g. 2s.
        #[arg(short, long, default_value = "2s", value_parser = humantime::parse_duration)]
        delay: std::time::Duration,
    },
    /// The host's side of guest networks: NAT (bridge xpnat0, DHCP, masquerade, port forwards),
    /// VLAN bridges, routed guests' proxy ARP.
    Network {
        /// What to do.
        action: NetworkAction,
        /// With show: print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Debootstrap a Debian OS's base system into the cache, where `new --method debootstrap`
    /// unpacks it (the first such guest does this itself). On any Debian machine of the same
    /// release: a faster one may prepare it, and the file be copied into the dom0's cache. Prints
    /// its path.
    PrepareBase {
        /// OS profile, e.g. debian12.
        os: String,
        /// The Debian mirror [default: the repo server's cache, http://127.0.0.1:REPO-PORT/debian].
        #[arg(long, value_parser = settings::check_url)]
        mirror: Option<String>,
    },
    /// Fetch an OS's installer kernel and initrd into the cache, checked against its tree's
    /// checksum list (SHA256SUMS or .treeinfo); `new` does this itself. Prints their paths.
    FetchInstaller {
        /// OS profile, e.g. debian12, rocky9.
        os: String,
        /// The repo server's URL as this host reaches it [default: repo-url of the settings, else
        /// http://127.0.0.1:REPO-PORT].
        #[arg(long)]
        repo_url: Option<String>,
    },
    /// Write the man pages and the bash and zsh completions below DIR (a package's usr/share)
    #[command(hide = true)]
    Docs {
        /// Directory to write man/man8/ and the completions' directories into
        dir: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn every_flag_argument_and_verb_has_help() {
        xenprov_core::clap_help::assert_documented(&Cli::command());
    }

    #[test]
    fn flags_that_reach_generated_files_are_checked_as_their_keys_are() {
        use clap::Parser;
        let refused = |args: &[&str], flag: &str, why: &str| {
            let e = Cli::try_parse_from(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} was accepted"))
                .to_string();
            assert!(e.contains(flag) && e.contains(why), "{args:?}: {e}");
        };
        for url in [
            "http://h:8080\nextra = 1",
            "http://h;reboot",
            "http://h/a%s",
        ] {
            let args = [
                "xenprov-guest",
                "render",
                "--from",
                "g.toml",
                "xl",
                "--repo-url",
                url,
            ];
            refused(&args, "--repo-url", "is not an http:// URL");
        }
        // FLAG=VALUE, so that a value starting with '-' is taken as one.
        for (flag_value, why) in [
            ("--bridge=-br", "start with '-'"),
            ("--bridge=br0\nvif = []", "not an interface name"),
            ("--mac=00:00:00:00:00:00", "all-zero"),
            ("--mac=ff:ff:ff:ff:ff:ff", "broadcast"),
            ("--ssh-key=ssh-ed25519 AAAAC3Nz me\n%end", "comment has"),
            ("--package=vim\n%end", "not a package name"),
            ("--vg=-dsk", "not a valid volume group name"),
            ("--memory= 6G", "holds a space"),
            ("--disk=6.G", "is not a size"),
            ("--type=pvhx", "not a guest type"),
            ("--ip=127.0.0.1/8", "loopback"),
            (
                "--root-password-hash=hunter2",
                "xenprov-install hash-password",
            ),
        ] {
            let flag = flag_value.split('=').next().unwrap();
            refused(&["xenprov-guest", "new", "web1", flag_value], flag, why);
        }
        refused(
            &["xenprov-guest", "new", "web.1"],
            "<NAME>",
            "not a guest name",
        );
        refused(
            &["xenprov-guest", "new", "web1", "--gateway", "192.0.2.1"],
            "--ip",
            "required",
        );
        assert!(Cli::try_parse_from(["xenprov-guest", "new", "web1", "--bridge=xenbr1"]).is_ok());
    }
}
