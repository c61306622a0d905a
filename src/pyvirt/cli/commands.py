"""The CLI's command table: every verb and tool of ``pyvirt``, declared once.

From this table come the option parser (:mod:`pyvirt.cli.args` and, for the tools,
:mod:`pyvirt.cli.toolargs`), ``pyvirt help`` and ``-h``/``--help`` (:mod:`pyvirt.cli.help`), the
global options each command honours, shell completion (:mod:`pyvirt.cli.complete`) and the man pages
(``scripts/make-man.py``). It is imported by every command, so it is plain tuples and one small class
(no typing, dataclasses, enum or re).

A command is ``Command(name, group, target, summary, description, options, ...)``:
  group      a keyword of :data:`GROUPS` (None: hidden from ``pyvirt help``)
  target     the module under ``pyvirt.cli`` (the function is ``cmd_`` + the name), or "module:function"
  options    (name, kind, help) tuples, in the order help shows them

An option's name is, for virsh-style verbs, its long name without dashes (``domain`` is ``--domain``);
for tools, its spellings (``-a --add``), or an upper-case word for a positional (``FILENAME``).
Its kind is a type word with marks:
  bool                        a flag
  string number               a value (``<string>``, ``<number>``)
  domain network pool vol     a value that is the name of one (completed from the daemon)
  file dir path uri           a file or directory name (path: handed to the code as a pathlib.Path)
  a leading ``*``             required: for a virsh verb, a positional that may also be named
  a leading ``?``             an optional positional
  a leading ``@``             (tools) an ordered step, collected in order in ``steps``
  a trailing ``+``            may be repeated (a positional: one or more / any number)
  a trailing ``=WORD``        (tools) the value's name in help (``--mount DEV[:MOUNTPOINT]``)

``globals`` says which global options the command honours: ``c`` (-c/--connect), ``l`` (-c, but
only a local URI), ``r`` (-r/--readonly), ``j`` (--json). A global option outside it is refused,
naming the option. The default: ``cr``, and ``j`` where the command has a ``json`` option.
"""

from __future__ import annotations


class Command:
    """One verb or tool (or a tool's sub-verb) of the table."""

    __slots__ = ("_globals", "description", "group", "name", "options", "style", "sub", "summary", "target")

    def __init__(
        self,
        name: str,
        group: str | None,
        target: str,
        summary: str,
        description: str,
        options: tuple[tuple[str, str, str], ...] = (),
        *,
        style: str = "virsh",
        sub: tuple[Command, ...] = (),
        globals: str | None = None,
    ) -> None:
        self.name = name
        self.group = group
        self.target = target
        self.summary = summary
        self.description = description
        self.options = options
        self.style = style  # "virsh": --name options, positionals may be named; "tool": GNU options
        self.sub = sub
        self._globals = globals

    @property
    def globals(self) -> str:
        """The global options this command honours (see the module's docstring)."""
        if self._globals is None:
            return "cr" + ("j" if any(o[0] == "json" for o in self.options) else "")
        return self._globals

    def function(self) -> tuple[str, str]:
        """(module, function) that runs the command."""
        module, _, func = self.target.partition(":")
        return "pyvirt.cli." + module, func or "cmd_" + self.name.replace("-", "_")

    def subcommand(self, name: str) -> Command | None:
        for cmd in self.sub:
            if cmd.name == name:
                return cmd
        return None


# (keyword, title), in virsh's order, then pyvirt's own.
GROUPS = (
    ("domain", "Domain Management"),
    ("monitor", "Domain Monitoring"),
    ("events", "Domain Events"),
    ("host", "Host and Hypervisor"),
    ("network", "Networking"),
    ("pool", "Storage Pool"),
    ("volume", "Storage Volume"),
    ("image", "Disk Images"),
    ("guest", "Guest Tools"),
    ("template", "Templates and Clones"),
    ("remote", "Remote Access"),
    ("pyvirt", "pyvirt itself"),
)

# The global options: (spellings, kind, help), before the command.
GLOBAL_OPTIONS = (
    (
        "-c --connect",
        "uri=URI",
        "hypervisor connection URI (default: $PYVIRT_DEFAULT_URI, qemu:///system for root, "
        "qemu:///session otherwise)",
    ),
    ("-r --readonly", "bool", "connect read-only (queries only)"),
    ("--json", "bool", "print results as JSON (commands that have JSON output)"),
    ("-h --help", "bool", "this help; `pyvirt help COMMAND` or `pyvirt COMMAND --help` for a command"),
    ("-V --version", "bool", "print the client's version"),
)

VERBS = (
    Command(
        "define",
        "domain",
        "domain",
        "define (but don't start) a domain from an XML file",
        "Define a domain.",
        (
            ("file", "*file", "file containing an XML domain description"),
            ("validate", "bool", "validate the XML against the schema"),
        ),
    ),
    Command(
        "undefine",
        "domain",
        "domain",
        "undefine a domain",
        "Undefine an inactive domain, or convert persistent to transient.",
        (
            ("domain", "*domain", "domain name, id or uuid"),
            ("remove-all-storage", "bool", "remove all associated storage volumes (use with caution)"),
            ("nvram", "bool", "remove nvram file"),
            ("keep-nvram", "bool", "keep nvram file"),
            ("managed-save", "bool", "remove domain managed state file"),
        ),
    ),
    Command(
        "create",
        "domain",
        "domain",
        "create a domain from an XML file",
        "Create a domain.",
        (
            ("file", "*file", "file containing an XML domain description"),
            ("paused", "bool", "leave the guest paused after creation"),
            ("console", "bool", "attach to console after creation"),
            ("autodestroy", "bool", "automatically destroy the guest when pyvirt disconnects"),
            ("validate", "bool", "validate the XML against the schema"),
        ),
    ),
    Command(
        "dumpxml",
        "domain",
        "domain",
        "domain information in XML",
        "Output the domain information as an XML dump to stdout.",
        (
            ("domain", "*domain", "domain name, id or uuid"),
            ("inactive", "bool", "show inactive defined XML"),
            ("security-info", "bool", "include security sensitive information in XML dump"),
            ("migratable", "bool", "provide XML suitable for migrations"),
        ),
    ),
    Command(
        "domxml-from-native",
        "domain",
        "native",
        "Convert native config to domain XML",
        "Convert a native guest configuration (qemu-argv: a QEMU command line) to domain XML; what has no "
        "domain XML is refused, naming it.",
        (
            ("format", "*string", "source config data format"),
            ("config", "*file", "config data file to import from"),
        ),
        globals="l",
    ),
    Command(
        "domxml-to-native",
        "domain",
        "native",
        "Convert domain XML to native guest configuration",
        "Convert domain XML config to a native guest configuration format (qemu-argv: the QEMU command "
        "line the daemon would start the domain with).",
        (
            ("format", "*string", "target config data type format"),
            ("xml", "*file", "xml data file to export from"),
        ),
    ),
    Command(
        "edit",
        "domain",
        "domain",
        "edit XML configuration for a domain",
        "Edit the XML configuration for a domain.",
        (("domain", "*domain", "domain name, id or uuid"),),
    ),
    Command(
        "list",
        "monitor",
        "domain",
        "list domains",
        "Returns list of domains.",
        (
            ("all", "bool", "list inactive & active domains"),
            ("inactive", "bool", "list inactive domains"),
            ("name", "bool", "list domain names only"),
            ("uuid", "bool", "list uuid's only"),
            ("id", "bool", "list domain IDs only"),
            ("table", "bool", "list table (default)"),
            ("title", "bool", "show domain title"),
            ("state-running", "bool", "list domains in running state"),
            ("state-shutoff", "bool", "list domains in shutoff state"),
            ("state-paused", "bool", "list domains in paused state"),
            ("state-other", "bool", "list domains in other states"),
            ("autostart", "bool", "list domains with autostart enabled"),
            ("no-autostart", "bool", "list domains with autostart disabled"),
            ("persistent", "bool", "list persistent domains"),
            ("transient", "bool", "list transient domains"),
            ("json", "bool", "print the result as JSON"),
        ),
    ),
    Command(
        "dominfo",
        "monitor",
        "domain",
        "domain information",
        "Returns basic information about the domain.",
        (
            ("domain", "*domain", "domain name, id or uuid"),
            ("json", "bool", "print the result as JSON"),
        ),
    ),
    Command(
        "domstate",
        "monitor",
        "domain",
        "domain state",
        "Returns state about a domain.",
        (
            ("domain", "*domain", "domain name, id or uuid"),
            ("reason", "bool", "also print reason for the state"),
            ("json", "bool", "print the result as JSON"),
        ),
    ),
    Command(
        "domid",
        "domain",
        "domain",
        "convert a domain name or UUID to domain id",
        "convert a domain name or UUID to domain id",
        (("domain", "*domain", "domain name or uuid"),),
    ),
    Command(
        "domuuid",
        "domain",
        "domain",
        "convert a domain name or id to domain UUID",
        "convert a domain name or id to domain UUID",
        (("domain", "*domain", "domain id or name"),),
    ),
    Command(
        "domname",
        "domain",
        "domain",
        "convert a domain id or UUID to domain name",
        "convert a domain id or UUID to domain name",
        (("domain", "*domain", "domain id or uuid"),),
    ),
    Command(
        "start",
        "domain",
        "domain",
        "start a (previously defined) inactive domain",
        "Start a domain, either from the last managedsave\n"
        "state, or via a fresh boot if no managedsave state\n"
        "is present.",
        (
            ("domain", "*domain", "name of the inactive domain"),
            ("paused", "bool", "leave the guest paused after creation"),
            ("console", "bool", "attach to console after creation"),
            ("autodestroy", "bool", "automatically destroy the guest when pyvirt disconnects"),
            ("bypass-cache", "bool", "avoid file system cache when loading"),
            ("force-boot", "bool", "force fresh boot by discarding any managed save"),
        ),
    ),
    Command(
        "shutdown",
        "domain",
        "domain",
        "gracefully shutdown a domain",
        "Run shutdown in the target domain.",
        (
            ("domain", "*domain", "domain name, id or uuid"),
            ("mode", "string", "shutdown mode: acpi|agent|initctl|signal|paravirt"),
        ),
    ),
    Command(
        "reboot",
        "domain",
        "domain",
        "reboot a domain",
        "Run a reboot command in the target domain.",
        (
            ("domain", "*domain", "domain name, id or uuid"),
            ("mode", "string", "shutdown mode: acpi|agent|initctl|signal|paravirt"),
        ),
    ),
    Command(
        "reset",
        "domain",
        "domain",
        "reset a domain",
        "Reset the target domain as if by power button",
        (("domain", "*domain", "domain name, id or uuid"),),
    ),
    Command(
        "destroy",
        "domain",
        "domain",
        "destroy (stop) a domain",
        "Forcefully stop a given domain, but leave its resources intact.",
        (
            ("domain", "*domain", "domain name, id or uuid"),
            ("graceful", "bool", "terminate gracefully"),
            ("remove-logs", "bool", "remove domain logs"),
        ),
    ),
    Command(
        "suspend",
        "domain",
        "domain",
        "suspend a domain",
        "Suspend a running domain.",
        (("domain", "*domain", "domain name, id or uuid"),),
    ),
    Command(
        "resume",
        "domain",
        "domain",
        "resume a domain",
        "Resume a previously suspended domain.",
        (("domain", "*domain", "domain name, id or uuid"),),
    ),
    Command(
        "autostart",
        "domain",
        "domain",
        "autostart a domain",
        "Configure a domain to be automatically started at boot.",
        (
            ("domain", "*domain", "domain name, id or uuid"),
            ("disable", "bool", "disable autostarting"),
        ),
    ),
    Command(
        "domblklist",
        "monitor",
        "domain",
        "list all domain blocks",
        "Get the summary of block devices for a domain.",
        (
            ("domain", "*domain", "domain name, id or uuid"),
            ("details", "bool", "additionally display the type and device value"),
            ("inactive", "bool", "get inactive rather than running configuration"),
            ("json", "bool", "print the result as JSON"),
        ),
    ),
    Command(
        "domiflist",
        "monitor",
        "domain",
        "list all domain virtual interfaces",
        "Get the summary of virtual interfaces for a domain.",
        (
            ("domain", "*domain", "domain name, id or uuid"),
            ("inactive", "bool", "get inactive rather than running configuration"),
            ("json", "bool", "print the result as JSON"),
        ),
    ),
    Command(
        "vncdisplay",
        "domain",
        "domain",
        "vnc display",
        "Output the IP address and port number for the VNC display.",
        (
            ("domain", "*domain", "domain name, id or uuid"),
            ("include-password", "bool", "include the VNC password in the output"),
        ),
    ),
    Command(
        "event",
        "events",
        "domain",
        "Domain Events",
        "List event types, or wait for domain events to occur",
        (
            ("domain", "?domain", "filter by domain name, id or uuid"),
            ("loop", "bool", "loop until timeout or interrupt, rather than one-shot"),
            ("all", "bool", "wait for all events instead of just one type"),
            ("timestamp", "bool", "show timestamp for each printed event"),
            ("timeout", "number", "timeout seconds"),
            ("event", "string", "which event type to wait for"),
        ),
    ),
    Command(
        "console",
        "domain",
        "console",
        "connect to the guest console",
        "Connect the virtual serial console for the guest",
        (
            ("domain", "*domain", "domain name, id or uuid"),
            ("force", "bool", "force console connection (disconnect already connected sessions)"),
            ("safe", "bool", "only connect if safe console handling is supported"),
            ("history", "bool", "replay the console output the domain printed before attaching"),
            ("devname", "string", "character device name"),
            ("timeout", "number", "detach after this many seconds"),
        ),
    ),
    Command(
        "nodeinfo",
        "host",
        "host",
        "node information",
        "Returns basic information about the node.",
        (("json", "bool", "print the result as JSON"),),
    ),
    Command(
        "capabilities",
        "host",
        "host",
        "capabilities",
        "Returns capabilities of hypervisor/driver.",
        (("json", "bool", "print the result as JSON"),),
    ),
    Command(
        "version",
        "host",
        "host",
        "show version",
        "Display the system version information.",
        (
            ("json", "bool", "print the result as JSON"),
            ("daemon", "bool", "report daemon version too"),
        ),
    ),
    Command(
        "uri",
        "host",
        "host",
        "print the hypervisor canonical URI",
        "print the hypervisor canonical URI",
        (("json", "bool", "print the result as JSON"),),
    ),
    Command(
        "hostname",
        "host",
        "host",
        "print the hypervisor hostname",
        "print the hypervisor hostname",
        (("json", "bool", "print the result as JSON"),),
    ),
    Command(
        "host-validate",
        "host",
        "host",
        "validate the host for running domains",
        "Check that this host can run KVM/QEMU domains (as virt-host-validate).",
        (("json", "bool", "print the result as JSON"),),
    ),
    Command(
        "net-list",
        "network",
        "network",
        "list networks",
        "Returns list of networks.",
        (
            ("all", "bool", "list inactive & active networks"),
            ("inactive", "bool", "list inactive networks"),
            ("name", "bool", "list network names only"),
            ("uuid", "bool", "list uuid's only"),
            ("autostart", "bool", "list networks with autostart enabled"),
            ("no-autostart", "bool", "list networks with autostart disabled"),
            ("persistent", "bool", "list persistent networks"),
            ("transient", "bool", "list transient networks"),
            ("json", "bool", "print the result as JSON"),
        ),
    ),
    Command(
        "net-info",
        "network",
        "network",
        "network information",
        "Returns basic information about the network",
        (
            ("network", "*network", "network name or uuid"),
            ("json", "bool", "print the result as JSON"),
        ),
    ),
    Command(
        "net-define",
        "network",
        "network",
        "define an inactive persistent virtual network or modify an existing persistent one from an XML file",
        "Define or modify a persistent virtual network.",
        (
            ("file", "*file", "file containing an XML network description"),
            ("validate", "bool", "validate the XML against the schema"),
        ),
    ),
    Command(
        "net-undefine",
        "network",
        "network",
        "undefine a persistent network",
        "Undefine the configuration for a persistent network.",
        (("network", "*network", "network name or uuid"),),
    ),
    Command(
        "net-create",
        "network",
        "network",
        "create a network from an XML file",
        "Create a network.",
        (
            ("file", "*file", "file containing an XML network description"),
            ("validate", "bool", "validate the XML against the schema"),
        ),
    ),
    Command(
        "net-start",
        "network",
        "network",
        "start a (previously defined) inactive network",
        "Start a network.",
        (("network", "*network", "network name or uuid"),),
    ),
    Command(
        "net-destroy",
        "network",
        "network",
        "destroy (stop) a network",
        "Forcefully stop a given network.",
        (("network", "*network", "network name or uuid"),),
    ),
    Command(
        "net-autostart",
        "network",
        "network",
        "autostart a network",
        "Configure a network to be automatically started at boot.",
        (
            ("network", "*network", "network name or uuid"),
            ("disable", "bool", "disable autostarting"),
        ),
    ),
    Command(
        "net-dumpxml",
        "network",
        "network",
        "network information in XML",
        "Output the network information as an XML dump to stdout.",
        (
            ("network", "*network", "network name or uuid"),
            ("inactive", "bool", "show inactive defined XML"),
        ),
    ),
    Command(
        "net-edit",
        "network",
        "network",
        "edit XML configuration for a network",
        "Edit the XML configuration for a network.",
        (("network", "*network", "network name or uuid"),),
    ),
    Command(
        "net-uuid",
        "network",
        "network",
        "convert a network name to network UUID",
        "convert a network name to network UUID",
        (("network", "*network", "network name"),),
    ),
    Command(
        "net-name",
        "network",
        "network",
        "convert a network UUID to network name",
        "convert a network UUID to network name",
        (("network", "*network", "network uuid"),),
    ),
    Command(
        "net-dhcp-leases",
        "network",
        "network",
        "print lease info for a given network",
        "Print lease info for a given network",
        (
            ("network", "*network", "network name or uuid"),
            ("json", "bool", "print the result as JSON"),
            ("mac", "string", "MAC address"),
        ),
    ),
    Command(
        "domifaddr",
        "monitor",
        "network",
        "Get network interfaces' addresses for a running domain",
        "Get network interfaces' addresses for a running domain",
        (
            ("domain", "*domain", "domain name, id or uuid"),
            ("interface", "?string", "network interface name"),
            ("full", "bool", "always display names and MACs of interfaces"),
            ("json", "bool", "print the result as JSON"),
            ("source", "string", "address source: 'lease', 'agent', or 'arp'"),
        ),
    ),
    Command(
        "attach-interface",
        "domain",
        "network",
        "attach network interface",
        "Attach new network interface.",
        (
            ("domain", "*domain", "domain name, id or uuid"),
            ("type", "*string", "network interface type"),
            ("source", "*string", "source of network interface"),
            ("live", "bool", "affect running domain"),
            ("config", "bool", "affect next boot"),
            ("current", "bool", "affect current domain"),
            ("persistent", "bool", "make live change persistent"),
            ("mac", "string", "MAC address"),
            ("model", "string", "model type"),
            ("target", "string", "target network name"),
        ),
    ),
    Command(
        "detach-interface",
        "domain",
        "network",
        "detach network interface",
        "Detach network interface.",
        (
            ("domain", "*domain", "domain name, id or uuid"),
            ("type", "*string", "network interface type"),
            ("live", "bool", "affect running domain"),
            ("config", "bool", "affect next boot"),
            ("current", "bool", "affect current domain"),
            ("persistent", "bool", "make live change persistent"),
            ("mac", "string", "MAC address"),
        ),
    ),
    Command(
        "domif-setlink",
        "domain",
        "network",
        "set link state of a virtual interface",
        "Set link state of a domain's virtual interface. This command wraps usage of update-device command.",
        (
            ("domain", "*domain", "domain name, id or uuid"),
            ("interface", "*string", "interface device (MAC Address)"),
            ("state", "*string", "new state of the device"),
            ("config", "bool", "affect next boot"),
        ),
    ),
    Command(
        "pool-list",
        "pool",
        "storage",
        "list pools",
        "Returns list of pools.",
        (
            ("all", "bool", "list inactive & active pools"),
            ("inactive", "bool", "list inactive pools"),
            ("details", "bool", "display extended details for pools"),
            ("name", "bool", "list name of active pools only"),
            ("uuid", "bool", "list UUID of active pools only"),
            ("autostart", "bool", "list pools with autostart enabled"),
            ("no-autostart", "bool", "list pools with autostart disabled"),
            ("persistent", "bool", "list persistent pools"),
            ("transient", "bool", "list transient pools"),
            ("json", "bool", "print the result as JSON"),
            ("type", "string", "only list pool of specified type(s) (if supported)"),
        ),
    ),
    Command(
        "pool-info",
        "pool",
        "storage",
        "storage pool information",
        "Returns basic information about the storage pool.",
        (
            ("pool", "*pool", "pool name or uuid"),
            ("bytes", "bool", "Return pool info in bytes"),
            ("json", "bool", "print the result as JSON"),
        ),
    ),
    Command(
        "pool-define",
        "pool",
        "storage",
        "define an inactive persistent storage pool or modify an existing persistent one from an XML file",
        "Define or modify a persistent storage pool.",
        (
            ("file", "*file", "file containing an XML pool description"),
            ("validate", "bool", "validate the XML against the schema"),
        ),
    ),
    Command(
        "pool-define-as",
        "pool",
        "storage",
        "define a pool from a set of args",
        "Define a pool.",
        (
            ("name", "*string", "name of the pool"),
            ("type", "*string", "type of the pool"),
            ("source-host", "?string", "source-host for underlying storage"),
            ("source-path", "?string", "source path for underlying storage"),
            ("source-dev", "?string", "source device for underlying storage"),
            ("source-name", "?string", "source name for underlying storage"),
            ("target", "?string", "target for underlying storage"),
            ("print-xml", "bool", "print XML document, but don't define/create"),
            ("source-format", "string", "format for underlying storage"),
        ),
    ),
    Command(
        "pool-create",
        "pool",
        "storage",
        "create a pool from an XML file",
        "Create a pool.",
        (
            ("file", "*file", "file containing an XML pool description"),
            ("build", "bool", "build the pool as normal"),
            ("no-overwrite", "bool", "do not overwrite any existing data"),
            ("overwrite", "bool", "overwrite any existing data"),
        ),
    ),
    Command(
        "pool-create-as",
        "pool",
        "storage",
        "create a pool from a set of args",
        "Create a pool.",
        (
            ("name", "*string", "name of the pool"),
            ("type", "*string", "type of the pool"),
            ("source-host", "?string", "source-host for underlying storage"),
            ("source-path", "?string", "source path for underlying storage"),
            ("source-dev", "?string", "source device for underlying storage"),
            ("source-name", "?string", "source name for underlying storage"),
            ("target", "?string", "target for underlying storage"),
            ("print-xml", "bool", "print XML document, but don't define/create"),
            ("build", "bool", "build the pool as normal"),
            ("no-overwrite", "bool", "do not overwrite any existing data"),
            ("overwrite", "bool", "overwrite any existing data"),
            ("source-format", "string", "format for underlying storage"),
        ),
    ),
    Command(
        "pool-edit",
        "pool",
        "storage",
        "edit XML configuration for a storage pool",
        "Edit the XML configuration for a storage pool.",
        (("pool", "*pool", "pool name or uuid"),),
    ),
    Command(
        "pool-build",
        "pool",
        "storage",
        "build a pool",
        "Build a given pool.",
        (
            ("pool", "*pool", "pool name or uuid"),
            ("overwrite", "bool", "overwrite any existing data"),
            ("no-overwrite", "bool", "do not overwrite any existing data"),
        ),
    ),
    Command(
        "pool-start",
        "pool",
        "storage",
        "start a (previously defined) inactive pool",
        "Start a pool.",
        (
            ("pool", "*pool", "pool name or uuid"),
            ("build", "bool", "build the pool as normal"),
            ("overwrite", "bool", "overwrite any existing data"),
            ("no-overwrite", "bool", "do not overwrite any existing data"),
        ),
    ),
    Command(
        "pool-destroy",
        "pool",
        "storage",
        "destroy (stop) a pool",
        "Forcefully stop a given pool. Raw data in the pool is untouched",
        (("pool", "*pool", "pool name or uuid"),),
    ),
    Command(
        "pool-autostart",
        "pool",
        "storage",
        "autostart a pool",
        "Configure a pool to be automatically started at boot.",
        (
            ("pool", "*pool", "pool name or uuid"),
            ("disable", "bool", "disable autostarting"),
        ),
    ),
    Command(
        "pool-refresh",
        "pool",
        "storage",
        "refresh a pool",
        "Refresh a given pool.",
        (("pool", "*pool", "pool name or uuid"),),
    ),
    Command(
        "pool-dumpxml",
        "pool",
        "storage",
        "pool information in XML",
        "Output the pool information as an XML dump to stdout.",
        (
            ("pool", "*pool", "pool name or uuid"),
            ("inactive", "bool", "show inactive defined XML"),
        ),
    ),
    Command(
        "pool-undefine",
        "pool",
        "storage",
        "undefine an inactive pool",
        "Undefine the configuration for an inactive pool.",
        (("pool", "*pool", "pool name or uuid"),),
    ),
    Command(
        "vol-list",
        "volume",
        "storage",
        "list vols",
        "Returns list of vols by pool.",
        (
            ("pool", "*pool", "pool name or uuid"),
            ("details", "bool", "display extended details for volumes"),
            ("json", "bool", "print the result as JSON"),
        ),
    ),
    Command(
        "vol-info",
        "volume",
        "storage",
        "storage vol information",
        "Returns basic information about the storage vol.",
        (
            ("vol", "*vol", "vol name, key or path"),
            ("bytes", "bool", "sizes are represented in bytes rather than pretty units"),
            ("physical", "bool", "return the physical size of the volume in allocation field"),
            ("json", "bool", "print the result as JSON"),
            ("pool", "pool", "pool name or uuid"),
        ),
    ),
    Command(
        "vol-create",
        "volume",
        "storage",
        "create a vol from an XML file",
        "Create a vol.",
        (
            ("pool", "*pool", "pool name"),
            ("file", "*file", "file containing an XML vol description"),
            ("prealloc-metadata", "bool", "preallocate metadata (for qcow2 instead of full allocation)"),
            ("validate", "bool", "validate the XML against the schema"),
        ),
    ),
    Command(
        "vol-create-as",
        "volume",
        "storage",
        "create a volume from a set of args",
        "Create a vol.",
        (
            ("pool", "*pool", "pool name"),
            ("name", "*string", "name of the volume"),
            ("capacity", "*string", "size of the vol, as scaled integer (default bytes)"),
            ("prealloc-metadata", "bool", "preallocate metadata (for qcow2 instead of full allocation)"),
            ("print-xml", "bool", "print XML document, but don't define/create"),
            ("allocation", "string", "initial allocation size, as scaled integer (default bytes)"),
            ("format", "string", "file format type raw,bochs,qcow,qcow2,qed,vmdk"),
            ("backing-vol", "vol", "the backing volume if taking a snapshot"),
            ("backing-vol-format", "string", "format of backing volume if taking a snapshot"),
        ),
    ),
    Command(
        "vol-create-from",
        "volume",
        "storage",
        "create a vol, using another volume as input",
        "Create a vol from an existing volume.",
        (
            ("pool", "*pool", "pool name or uuid"),
            ("file", "*file", "file containing an XML vol description"),
            ("vol", "*vol", "vol name, key or path"),
            ("prealloc-metadata", "bool", "preallocate metadata (for qcow2 instead of full allocation)"),
            ("reflink", "bool", "use btrfs COW lightweight copy"),
            ("validate", "bool", "validate the XML against the schema"),
            ("inputpool", "pool", "pool name or uuid of the input volume's pool"),
        ),
    ),
    Command(
        "vol-clone",
        "volume",
        "storage",
        "clone a volume.",
        "Clone an existing volume within the parent pool.",
        (
            ("vol", "*vol", "vol name, key or path"),
            ("newname", "*string", "clone name"),
            ("prealloc-metadata", "bool", "preallocate metadata (for qcow2 instead of full allocation)"),
            ("reflink", "bool", "use btrfs COW lightweight copy"),
            ("pool", "pool", "pool name or uuid"),
        ),
    ),
    Command(
        "vol-resize",
        "volume",
        "storage",
        "resize a vol",
        "Resizes a storage volume. This is safe only for storage volumes not in use by an\nactive guest.",
        (
            ("vol", "*vol", "vol name, key or path"),
            ("capacity", "*string", "new capacity for the vol, as scaled integer (default bytes)"),
            ("allocate", "bool", "allocate the new capacity, rather than leaving it sparse"),
            ("delta", "bool", "use capacity as a delta to current size, rather than the new size"),
            ("shrink", "bool", "allow the resize to shrink the volume"),
            ("pool", "pool", "pool name or uuid"),
        ),
    ),
    Command(
        "vol-wipe",
        "volume",
        "storage",
        "wipe a vol",
        "Ensure data previously on a volume is not accessible to future reads",
        (
            ("vol", "*vol", "vol name, key or path"),
            ("pool", "pool", "pool name or uuid"),
            ("algorithm", "string", "perform selected wiping algorithm"),
        ),
    ),
    Command(
        "vol-delete",
        "volume",
        "storage",
        "delete a vol",
        "Delete a given vol.",
        (
            ("vol", "*vol", "vol name, key or path"),
            (
                "delete-snapshots",
                "bool",
                "delete snapshots associated with volume (must be supported by storage driver)",
            ),
            ("pool", "pool", "pool name or uuid"),
        ),
    ),
    Command(
        "vol-path",
        "volume",
        "storage",
        "returns the volume path for a given volume name or key",
        "returns the volume path for a given volume name or key",
        (
            ("vol", "*vol", "volume name or key"),
            ("pool", "pool", "pool name or uuid"),
        ),
    ),
    Command(
        "vol-dumpxml",
        "volume",
        "storage",
        "vol information in XML",
        "Output the vol information as an XML dump to stdout.",
        (
            ("vol", "*vol", "vol name, key or path"),
            ("pool", "pool", "pool name or uuid"),
        ),
    ),
    Command(
        "vol-upload",
        "volume",
        "storage",
        "upload file contents to a volume",
        "Upload file contents to a volume",
        (
            ("vol", "*vol", "vol name, key or path"),
            ("file", "*file", "file"),
            ("sparse", "bool", "preserve sparseness of volume"),
            ("pool", "pool", "pool name or uuid"),
            ("offset", "number", "volume offset to upload to"),
            ("length", "number", "amount of data to upload"),
        ),
    ),
    Command(
        "vol-download",
        "volume",
        "storage",
        "download volume contents to a file",
        "Download volume contents to a file",
        (
            ("vol", "*vol", "vol name, key or path"),
            ("file", "*file", "file"),
            ("sparse", "bool", "preserve sparseness of volume"),
            ("pool", "pool", "pool name or uuid"),
            ("offset", "number", "volume offset to download from"),
            ("length", "number", "amount of data to download"),
        ),
    ),
)

_FMT = ("-f", "string=FMT", "format of the image (default: probed)")
_QUIET = ("-q", "bool", "quiet: no progress or result messages")
_OUTPUT = ("--output", "string=human|json", "output format (--json on the command line selects json)")
_SHARE = ("-U --force-share", "bool", "open the image with shared permissions (another user may write it)")
_OPTS = ("-o", "string=OPTIONS", "format options, comma-separated (-o help lists them)")
_IMG = "img:cmd_"

IMG = Command(
    "img",
    "image",
    "img:main",
    "disk images: qemu-img's verbs on pyvirt's own image library",
    "Create, inspect, check, convert and change disk image files (raw, qcow2; vmdk and vdi read),\n"
    "with qemu-img's options, output and exit codes. Works on local files only.",
    (("COMMAND", "*string", "one of the verbs below"),),
    style="tool",
    globals="l",
    sub=(
        Command(
            "create",
            "image",
            _IMG + "create",
            "create a new disk image",
            "Create a new disk image FILENAME of SIZE bytes (suffixes k, M, G, T), or\n"
            "as big as its backing file.",
            (
                _QUIET,
                _FMT,
                ("-b", "file=BACKING", "backing file (a new qcow2 overlay on it)"),
                ("-F", "string=BACKING_FMT", "the backing file's format"),
                ("-u", "bool", "unsafe: do not check that the backing file opens"),
                _OPTS,
                ("--object", "string=OBJECT", "a secret: secret,id=ID,data=PASSPHRASE (or file=PATH)"),
                ("FILENAME", "*file", "the image to create"),
                ("SIZE", "?string", "virtual size (default: the backing file's)"),
            ),
            style="tool",
            globals="l",
        ),
        Command(
            "info",
            "image",
            _IMG + "info",
            "show information about a disk image",
            "Print the format, virtual size, disk usage and format details of FILENAME.",
            (
                _FMT,
                _OUTPUT,
                ("--backing-chain", "bool", "also show every image in the backing chain"),
                _SHARE,
                ("--image-opts", "bool", "accepted for qemu-img compatibility"),
                ("FILENAME", "*file", "the image"),
            ),
            style="tool",
            globals="lrj",
        ),
        Command(
            "check",
            "image",
            _IMG + "check",
            "check a disk image for consistency",
            "Check the metadata of FILENAME (qcow2: refcounts, L1/L2 tables), optionally\n"
            "repairing leaks or all errors. Exit status as qemu-img's.",
            (
                _QUIET,
                _FMT,
                _OUTPUT,
                ("-r --repair", "string=leaks|all", "repair leaked clusters, or all errors"),
                ("-T", "string=SRC_CACHE", "accepted for qemu-img compatibility"),
                _SHARE,
                ("FILENAME", "*file", "the image"),
            ),
            style="tool",
            globals="lj",
        ),
        Command(
            "convert",
            "image",
            _IMG + "convert",
            "convert images to another format",
            "Copy one or more images (concatenated) into OUTPUT_FILENAME in OUTPUT_FMT,\nskipping zeroes.",
            (
                ("-c", "bool", "compress the output (qcow2)"),
                ("-p", "bool", "show progress"),
                _QUIET,
                _FMT,
                ("-O", "string=OUTPUT_FMT", "the output format (default: raw)"),
                _OPTS,
                ("-B", "file=BACKING", "the output's backing file"),
                ("-F", "string=BACKING_FMT", "the backing file's format"),
                (
                    "-S",
                    "string=SIZE",
                    "consecutive zero bytes that make a hole (default 4k; 0: fully allocated)",
                ),
                ("-m", "number=N", "parallel coroutines (worker threads)"),
                ("-W", "bool", "allow out-of-order writes (the writer threads always write out of order)"),
                ("-n", "bool", "do not create the output: write into an existing image"),
                ("-t", "string=CACHE", "output cache mode: any but unsafe (the default) syncs the output"),
                ("-T", "string=SRC_CACHE", "source cache mode (checked; reads go through the page cache)"),
                _SHARE,
                ("--target-is-zero", "bool", "the existing output (-n) reads as zeroes: skip writing them"),
                ("--object", "string=OBJECT", "a secret: secret,id=ID,data=PASSPHRASE (or file=PATH)"),
                (
                    "--image-opts",
                    "bool",
                    "the inputs are option lists: driver=qcow2,file.filename=PATH,encrypt.key-secret=ID",
                ),
                ("FILENAME", "*file+", "the input image(s)"),
                ("OUTPUT_FILENAME", "*file", "the output image"),
            ),
            style="tool",
            globals="l",
        ),
        Command(
            "resize",
            "image",
            _IMG + "resize",
            "change the virtual size of an image",
            "Set the virtual size of FILENAME to SIZE, or grow or shrink it by +SIZE or -SIZE.",
            (
                _QUIET,
                _FMT,
                ("--shrink", "bool", "allow shrinking (data past the new end is lost)"),
                ("--preallocation", "string=MODE", "off, metadata (qcow2), falloc or full: for the new area"),
                ("--object", "string=OBJECT", "accepted for qemu-img compatibility"),
                ("--image-opts", "bool", "accepted for qemu-img compatibility"),
                ("FILENAME", "*file", "the image"),
                ("SIZE", "*string", "the new size, or +SIZE / -SIZE"),
            ),
            style="tool",
            globals="l",
        ),
        Command(
            "commit",
            "image",
            _IMG + "commit",
            "commit an overlay into its backing file",
            "Write the data of FILENAME into its backing file (or -b BASE down the chain).",
            (
                _QUIET,
                _FMT,
                ("-p", "bool", "show progress"),
                ("-d", "bool", "do not empty FILENAME after the commit"),
                ("-b", "file=BASE", "commit down to this image of the chain (implies -d)"),
                ("-t", "string=CACHE", "cache mode (checked; I/O is uncached-safe)"),
                ("-r", "string=RATE_LIMIT", "rate limit (checked, not applied)"),
                ("FILENAME", "*file", "the overlay"),
            ),
            style="tool",
            globals="l",
        ),
        Command(
            "rebase",
            "image",
            _IMG + "rebase",
            "change the backing file of an image",
            "Make BACKING the backing file of FILENAME, copying what differs (safe mode),\n"
            "or only rewriting the header (-u).",
            (
                _QUIET,
                _FMT,
                ("-p", "bool", "show progress"),
                ("-u", "bool", "unsafe: only change the backing file name"),
                ("-b", "file=BACKING", "the new backing file ('' for none)"),
                ("-F", "string=BACKING_FMT", "the new backing file's format"),
                ("-t", "string=CACHE", "cache mode (checked)"),
                ("-T", "string=SRC_CACHE", "source cache mode (checked)"),
                _SHARE,
                ("FILENAME", "*file", "the image"),
            ),
            style="tool",
            globals="l",
        ),
        Command(
            "snapshot",
            "image",
            _IMG + "snapshot",
            "list, create, apply or delete internal snapshots",
            "Internal snapshots of a qcow2 image: one of -l, -c, -a, -d.",
            (
                _QUIET,
                _FMT,
                ("-l", "bool", "list the snapshots"),
                ("-a", "string=SNAPSHOT", "apply (revert to) a snapshot"),
                ("-c", "string=SNAPSHOT", "create a snapshot"),
                ("-d", "string=SNAPSHOT", "delete a snapshot"),
                _SHARE,
                ("FILENAME", "*file", "the image"),
            ),
            style="tool",
            globals="l",
        ),
        Command(
            "map",
            "image",
            _IMG + "map",
            "show the allocation map of an image",
            "Print which ranges of FILENAME hold data, zeroes, or come from its backing chain.",
            (
                _FMT,
                _OUTPUT,
                _SHARE,
                ("--start-offset", "string=OFFSET", "map from this guest offset"),
                ("--max-length", "string=LEN", "map at most this many bytes"),
                ("FILENAME", "*file", "the image"),
            ),
            style="tool",
            globals="lrj",
        ),
        Command(
            "compare",
            "image",
            _IMG + "compare",
            "check whether two images have the same contents",
            "Compare the guest-visible contents of two images. Exit 0 when identical, 1 when not.",
            (
                ("-f", "string=FMT", "format of the first image"),
                ("-F", "string=FMT", "format of the second image"),
                ("-s", "bool", "strict: images of different sizes differ"),
                ("-p", "bool", "show progress (accepted)"),
                _QUIET,
                _SHARE,
                ("FILENAME1", "*file", "the first image"),
                ("FILENAME2", "*file", "the second image"),
            ),
            style="tool",
            globals="lr",
        ),
        Command(
            "dd",
            "image",
            _IMG + "dd",
            "copy a range of an image into a new image",
            "Copy blocks of INPUT into a new OUTPUT image, as dd(1) copies files: bs=BLOCK_SIZE (default\n"
            "512), count=BLOCKS (counted from the start of the input, as qemu-img counts them),\n"
            "skip=BLOCKS, if=INPUT, of=OUTPUT.",
            (
                _FMT,
                ("-O", "string=OUTPUT_FMT", "the output image's format (default: raw)"),
                _SHARE,
                ("--object", "string=OBJECT", "a secret object (secret,id=ID,data=...|file=...)"),
                (
                    "--image-opts",
                    "bool",
                    "if= is an option string (driver=,file.filename=,encrypt.key-secret=)",
                ),
                ("OPERAND", "*string", "bs=, count=, skip=, if=, of="),
            ),
            style="tool",
            globals="l",
        ),
        Command(
            "measure",
            "image",
            _IMG + "measure",
            "compute the size a converted image needs",
            "Print the host size an image of OUTPUT_FMT needs for FILENAME's data, or for --size.",
            (
                _OUTPUT,
                _FMT,
                ("-O", "string=OUTPUT_FMT", "the format to measure for (default: raw)"),
                _OPTS,
                ("--size", "string=SIZE", "measure a new image of this size instead of FILENAME"),
                _SHARE,
                ("--object", "string=OBJECT", "accepted for qemu-img compatibility"),
                ("--image-opts", "bool", "accepted for qemu-img compatibility"),
                ("FILENAME", "?file", "the image"),
            ),
            style="tool",
            globals="lrj",
        ),
    ),
)

_DISKS = (
    ("-a --add", "file+=DISK", "a disk image to work on (repeatable)"),
    ("-d --domain", "domain=DOMAIN", "work on a domain's disks"),
    ("-c --connect", "uri=URI", "the connection for -d (default: the global -c)"),
    ("--format", "string=FORMAT", "format of the following -a disks (default: detected)"),
    ("-v --verbose", "bool", "libguestfs debug output"),
    ("-q --quiet", "bool", "no progress messages"),
)
_CUSTOMIZE = (
    ("--hostname", "@string=HOSTNAME", "set the hostname"),
    ("--root-password", "@string=SELECTOR", "password:PW | file:FILE | random | disabled"),
    ("--ssh-inject", "@string=USER[:SELECTOR]", "USER:file:KEYFILE or USER:string:KEY"),
    ("--write", "@string=FILE:CONTENT", "write a file"),
    ("--append-line", "@string=FILE:LINE", "append a line to a file"),
    ("--delete", "@string=PATH", "delete a file or directory (wildcards allowed)"),
    ("--run-command", "@string=CMD", "run a shell command in the guest"),
    ("--install", "@string=PKG,PKG..", "install packages (needs --network)"),
    ("--network", "bool", "give the appliance network"),
    ("--no-network", "bool", "no network (default unless --install)"),
)
_REPORT = (
    ("-n --dry-run --dryrun", "bool", "change nothing, say what would change"),
    ("--json", "bool", "report the changes as JSON"),
)
_POOL = ("--pool", "pool=POOL", "the pool holding templates and clones (default: default)")
_CONNECT = ("-c --connect", "uri=URI", "connection URI (default: the global -c)")

TOOLS = (
    IMG,
    Command(
        "sysprep",
        "guest",
        "guest:sysprep_main",
        "reset a guest so that its clones are distinct machines",
        "As virt-sysprep: remove machine-id, SSH host keys, logs, ... from a shut-off\n"
        "guest's disks, and apply customizations.",
        (
            *_DISKS,
            *_CUSTOMIZE,
            (
                "--operations --operation --enable",
                "string+=OPS",
                "the operations to run (OP,-OP,...; default: the default set)",
            ),
            ("--list-operations", "bool", "list the operations and exit"),
            *_REPORT,
        ),
        style="tool",
        globals="cj",
    ),
    Command(
        "customize",
        "guest",
        "guest:customize_main",
        "customize a guest's disks offline",
        "As virt-customize: change a shut-off guest's files, in the order given.",
        (
            *_DISKS,
            *_CUSTOMIZE,
            ("--prepare-template", "@bool", "prepare the guest as a template"),
            *_REPORT,
        ),
        style="tool",
        globals="cj",
    ),
    Command(
        "mount",
        "guest",
        "guest:mount_main",
        "mount a guest's file systems on a host directory",
        "As guestmount: serve a guest's file systems under MOUNTPOINT through FUSE. A\n"
        "running domain's disks are mounted read-only.",
        (
            *_DISKS,
            ("-i --inspector", "bool", "mount the guest's file systems as it would"),
            (
                "-m --mount",
                "string+=DEV[:MOUNTPOINT[:OPTIONS[:FSTYPE]]]",
                "mount this file system (repeatable)",
            ),
            ("-r --ro", "bool", "read-only (also the global -r)"),
            ("-o --option", "string+=FUSEOPT", "a FUSE option (repeatable)"),
            ("--pid-file", "file=FILE", "write the server's pid here"),
            ("MOUNTPOINT", "*dir", "the host directory"),
        ),
        style="tool",
        globals="cr",
    ),
    Command(
        "umount",
        "guest",
        "guest:umount_main",
        "unmount a guest mount",
        "As guestunmount: unmount MOUNTPOINT and wait until its disk is written.",
        (
            ("--retry", "number=N", "retries while the mount is busy (default: 5)"),
            ("MOUNTPOINT", "*dir", "the mount point"),
        ),
        style="tool",
        globals="",
    ),
    Command(
        "template",
        "template",
        "template:main",
        "templates: read-only golden images to clone VMs from",
        "Build, import, list and delete templates (volumes in a pool).",
        (("COMMAND", "*string", "one of the verbs below"),),
        style="tool",
        globals="cj",
        sub=(
            Command(
                "build",
                "template",
                "template:main",
                "build a template from a distribution's packages",
                "Build a template disk with debootstrap and prepare it for cloning.",
                (
                    ("--os", "*string=OS", "the OS to build: debian-12"),
                    ("--size", "string=SIZE", "the disk's virtual size (default: 10G)"),
                    ("--cache-dir", "path=DIR", "where debootstrap trees are cached"),
                    ("-q --quiet", "bool", "no progress messages"),
                    ("-v --verbose", "bool", "libguestfs debug output"),
                    ("--json", "bool", "print the template as JSON"),
                    _CONNECT,
                    _POOL,
                    ("NAME", "*string", "the template's name"),
                ),
                style="tool",
                globals="cj",
            ),
            Command(
                "import",
                "template",
                "template:main",
                "make an existing image file a template",
                "Copy an image file into the pool as a template.",
                (
                    ("--os", "string=OS", "what the image holds, for template list"),
                    ("-q --quiet", "bool", "no progress messages"),
                    ("--json", "bool", "print the template as JSON"),
                    _CONNECT,
                    _POOL,
                    ("FILE", "*file", "the image file"),
                    ("NAME", "*string", "the template's name"),
                ),
                style="tool",
                globals="cj",
            ),
            Command(
                "list",
                "template",
                "template:main",
                "list the templates",
                "List the templates of the pool.",
                (
                    ("--json", "bool", "print the list as JSON"),
                    _CONNECT,
                    _POOL,
                ),
                style="tool",
                globals="cj",
            ),
            Command(
                "delete",
                "template",
                "template:main",
                "delete a template no clone depends on",
                "Delete a template's volume.",
                (
                    _CONNECT,
                    _POOL,
                    ("NAME", "*string", "the template's name"),
                ),
                style="tool",
                globals="c",
            ),
        ),
    ),
    Command(
        "clone",
        "template",
        "template:clone_main",
        "a new VM from a template or a shut-off domain",
        "A new VM from a template (linked: qcow2 overlays) or a shut-off domain (full\n"
        "copies), with a new identity and a cloud-init seed.",
        (
            _CONNECT,
            _POOL,
            ("--original", "*string=TEMPLATE|DOMAIN", "the template or shut-off domain to clone"),
            ("--name", "*string=NEW", "the new domain's name"),
            ("--linked", "bool", "qcow2 overlays on the original's disks (default for templates)"),
            ("--full", "bool", "full copies of the disks (default for domains)"),
            ("--vcpus", "number=N", "virtual CPUs"),
            ("--memory", "string=SIZE", "e.g. 2G, 512M (a bare number is MiB; default 1G)"),
            ("--disk-size", "string=SIZE", "grow the first disk to SIZE (the guest grows its root)"),
            ("--network", "string=NET", "a network's name, 'user' (QEMU user networking) or 'none'"),
            ("--hostname", "string=H", "the guest's hostname (default: the new name)"),
            ("--ssh-key", "file+=FILE", "public key(s) for --user (repeatable)"),
            ("--user", "string=USER", "the user cloud-init creates (default: pyvirt)"),
            ("--user-data", "file=FILE", "cloud-init user-data merged with pyvirt's"),
            ("--json", "bool", "print the result as JSON"),
            ("-q --quiet", "bool", "no progress messages"),
        ),
        style="tool",
        globals="cj",
    ),
    Command(
        "pki",
        "remote",
        "pki:main",
        "make the CA and the certificates qemu+tls:// needs",
        "The default directory is /etc/pki/pyvirt for root (under $PYVIRT_ROOT) and\n"
        "~/.pki/pyvirt for other users; --dir picks another, --out writes the issued\n"
        "files (and a copy of the CA certificate) elsewhere, e.g. to copy to a client.",
        (("COMMAND", "*string", "one of the verbs below"),),
        style="tool",
        globals="",
        sub=(
            Command(
                "init",
                "remote",
                "pki:main",
                "create the certificate authority",
                "Create the CA's key and certificate.",
                (
                    ("--dir", "path=DIR", "CA directory (default: the default directory)"),
                    ("--days", "number=DAYS", "validity in days"),
                    ("--cn", "string=NAME", "the CA's name (default: pyvirt CA on HOSTNAME)"),
                    ("--force", "bool", "replace an existing CA"),
                ),
                style="tool",
                globals="",
            ),
            Command(
                "issue-server",
                "remote",
                "pki:main",
                "issue the daemon's certificate",
                "Issue servercert.pem for pyvirtd --listen-tls.",
                (
                    ("--dir", "path=DIR", "CA directory (default: the default directory)"),
                    ("--days", "number=DAYS", "validity in days"),
                    (
                        "--hostname",
                        "string+=NAME",
                        "a host name or address clients use (repeatable; this host's names, "
                        "localhost, 127.0.0.1 and ::1 are always included)",
                    ),
                    ("--out", "path=DIR", "write the files here instead of --dir"),
                ),
                style="tool",
                globals="",
            ),
            Command(
                "issue-client",
                "remote",
                "pki:main",
                "issue a client certificate",
                "Issue clientcert.pem for a qemu+tls:// client.",
                (
                    ("--dir", "path=DIR", "CA directory (default: the default directory)"),
                    ("--days", "number=DAYS", "validity in days"),
                    ("--cn", "string=NAME", "the client's name (default: this host's name)"),
                    ("--readonly", "bool", "the daemon serves this client read-only"),
                    ("--out", "path=DIR", "write the files here instead of --dir"),
                ),
                style="tool",
                globals="",
            ),
            Command(
                "show",
                "remote",
                "pki:main",
                "describe certificates",
                "Print the subject, issuer, validity and names of certificates.",
                (
                    (
                        "--dir",
                        "path=DIR",
                        "directory whose certificates to show (default: the default directory)",
                    ),
                    ("FILE", "?path+", "certificate files (default: every *cert.pem in --dir)"),
                ),
                style="tool",
                globals="",
            ),
        ),
    ),
    Command(
        "proxy",
        "remote",
        "proxy:main",
        "bridge stdin/stdout to the local daemon (the far end of qemu+ssh://)",
        "As virt-ssh-helper: ssh runs it on the remote host; it connects to the daemon,\n"
        "greets with one line (pyvirt-proxy 1), then copies bytes both ways.",
        (
            ("mode", "string", "the daemon's mode: system or session (default: system for root)"),
            ("socket", "file", "the daemon's socket (default: the mode's)"),
            ("readonly", "bool", "use the read-only socket (also the global -r)"),
        ),
        globals="r",
    ),
    Command(
        "help",
        "pyvirt",
        "help:cmd_help",
        "print help",
        "Prints global help, command specific help, or help for a group of related\ncommands",
        (
            (
                "command",
                "?string",
                "Prints global help, command specific help, or help for a group of related commands",
            ),
            ("subcommand", "?string", "a tool's verb (img create, template build, ...)"),
        ),
        globals="cr",
    ),
    Command(
        "complete",
        None,
        "complete:cmd_complete",
        "shell completion candidates (used by the bash completion script)",
        "Print the completions of the word under the cursor, one a line.",
        (
            ("line", "*string", "the command line up to the cursor"),
            ("word", "*string", "the word bash completes (cut at : and =)"),
        ),
        globals="cr",
    ),
)

COMMANDS = VERBS + TOOLS


def find(name: str) -> Command | None:
    """The command called ``name``, or None."""
    for cmd in COMMANDS:
        if cmd.name == name:
            return cmd
    return None
