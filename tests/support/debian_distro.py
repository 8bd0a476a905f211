"""Turns the builder image's own Debian userland into an RPM distribution repo.

Runs as root inside a container of the builder image (tests/support/distro_repo.rs starts it):

    python3 debian_distro.py OUT_DIR

and leaves OUT_DIR/repo (rpms, repodata with a comps `build` and `srpm-build` group) and
OUT_DIR/packages.txt (the rpm names, one a line). installroot mode needs a repo that holds a whole
buildroot, and this machine reaches no real RPM distribution, so the image's files become one.

Every installed Debian package in the dependency closure of the groups and EXTRA becomes one binary rpm of the
same name with the files dpkg lists for it and `Requires:` for its Depends/Pre-Depends, so dnf
resolves the closure itself, as with a real distribution. A `filesystem` rpm (Fedora's name)
carries what no dpkg package owns but a root needs: the usrmerge symlinks, the alternatives
links, ld.so.cache, system passwd/group entries and rpm's dbpath pin.
"""

import os
import re
import subprocess
import sys

# What a buildroot needs: Fedora's `build` group, in Debian's package names, plus python3 (the
# net-probe test package runs it in %build without BuildRequiring it). Debian's Essential
# packages are nobody's Depends, so the ones a build calls are listed: dash owns /bin/sh.
BUILD_GROUP = [
    "bash", "dash", "bzip2", "coreutils", "cpio", "diffutils", "findutils", "mawk", "grep", "gzip",
    "patch", "rpm", "sed", "tar", "unzip", "util-linux", "xz-utils", "debianutils", "file",
    "python3-minimal", "filesystem",
]
SRPM_BUILD_GROUP = [
    "bash", "dash", "coreutils", "cpio", "findutils", "grep", "gzip", "rpm", "sed", "tar",
    "xz-utils", "filesystem",
]
# In the repo, not in a group: only a package's BuildRequires brings them in (the C test
# package's gcc and make, the root probe's procps for `ps`).
EXTRA = ["gcc", "make", "libc6-dev", "procps"]
# Debian only Recommends libc6-dev; Fedora's gcc Requires glibc-devel, and a compiler without
# libc headers builds nothing.
ADD_REQUIRES = {"gcc-12": ["libc6-dev"]}
# Files are packaged at their usrmerged paths; the classic paths that dependencies name are
# provided as Fedora's bash and dash provide them (a %post needs /bin/sh).
ADD_PROVIDES = {"dash": ["/bin/sh"], "bash": ["/bin/bash"]}
# Dependencies left out to keep the repo small: rpm's perl dependency generators only run on
# perl files, and no test package has any; dpkg/apt/debconf are the Debian package manager,
# which a buildroot built by rpm never runs.
PRUNE = {"perl", "perl-base", "perl-modules-5.36", "libperl5.36", "dpkg", "debconf",
         "apt", "init-system-helpers", "sensible-utils", "dpkg-dev"}


def parse_status():
    packages = {}
    with open("/var/lib/dpkg/status", encoding="utf-8") as status:
        for stanza in status.read().split("\n\n"):
            fields = {}
            key = None
            for line in stanza.splitlines():
                if line.startswith((" ", "\t")) and key:
                    fields[key] += "\n" + line
                elif ":" in line:
                    key, value = line.split(":", 1)
                    fields[key] = value.strip()
            if "Package" in fields and fields.get("Status", "").endswith(" installed"):
                packages[fields["Package"]] = fields
    return packages


def clauses(text):
    """Depends text -> list of alternatives lists of bare package names."""
    result = []
    for clause in filter(None, (c.strip() for c in (text or "").split(","))):
        names = []
        for alternative in clause.split("|"):
            name = alternative.strip().split()[0].split(":")[0]
            names.append(name)
        result.append(names)
    return result


def main(out):
    packages = parse_status()
    virtual = {}
    for name, fields in packages.items():
        for provided in clauses(fields.get("Provides")):
            virtual.setdefault(provided[0], []).append(name)

    def resolve(names):
        for name in names:
            if name in packages:
                return name
            if name in virtual:
                return sorted(virtual[name])[0]
        return None

    requires = {}
    wanted = [p for p in BUILD_GROUP + SRPM_BUILD_GROUP + EXTRA if p != "filesystem"]
    closure = []
    while wanted:
        name = wanted.pop()
        if name in requires:
            continue
        if name not in packages:
            sys.exit(f"debian_distro.py: {name} is not installed in the image")
        fields = packages[name]
        deps = set()
        for alternatives in clauses(fields.get("Depends")) + clauses(fields.get("Pre-Depends")):
            target = resolve(alternatives)
            if target and target != name and target not in PRUNE:
                deps.add(target)
        deps.update(ADD_REQUIRES.get(name, []))
        requires[name] = sorted(deps)
        closure.append(name)
        wanted.extend(deps)

    owner = {}
    files = {}
    for name in sorted(closure):
        arch = packages[name].get("Architecture", "all")
        for listing in (f"/var/lib/dpkg/info/{name}:{arch}.list", f"/var/lib/dpkg/info/{name}.list"):
            if os.path.exists(listing):
                break
        else:
            sys.exit(f"debian_distro.py: no dpkg file list for {name}")
        paths = []
        with open(listing, encoding="utf-8") as handle:
            for path in handle.read().splitlines():
                if not path.startswith("/") or not os.path.lexists(path):
                    continue
                if os.path.isdir(path) and not os.path.islink(path):
                    continue
                # usrmerge: /bin/sh is /usr/bin/sh; package the real path.
                real = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
                if real in owner:
                    continue
                owner[real] = name
                paths.append(real)
        files[name] = paths

    extra_files = filesystem_files(owner)
    files["filesystem"] = extra_files
    requires["filesystem"] = []
    write_spec(out, packages, requires, files)
    return sorted(files)


def filesystem_files(owner):
    paths = ["/bin", "/sbin", "/lib", "/lib64", "/etc/passwd", "/etc/group", "/etc/ld.so.cache",
             "/etc/rpm/macros", "/etc/dnf/vars/releasever", "/etc/debian_version",
             "/etc/os-release"]
    for directory in ("/etc/alternatives", "/usr/bin", "/usr/sbin"):
        for entry in sorted(os.listdir(directory)):
            path = os.path.join(directory, entry)
            if path in owner:
                continue
            if directory == "/etc/alternatives" and entry != "README":
                paths.append(path)
            elif os.path.islink(path) and os.readlink(path).startswith("/etc/alternatives/"):
                paths.append(path)
    return [p for p in paths if os.path.lexists(p) and p not in owner]


def spec_path(path):
    # rpm globs file list entries and has no escape; a one-character class matches the glob
    # character itself (coreutils ships /usr/bin/[).
    return '"' + re.sub(r"([\[\]*?{}])", r"[\1]", path) + '"'


def write_spec(out, packages, requires, files):
    build = os.path.join(out, "build")
    os.makedirs(build, exist_ok=True)
    lines = [
        "%global debug_package %{nil}",
        "%global __os_install_post %{nil}",
        "%global __spec_install_post %{nil}",
        "%global _build_id_links none",
        # Stored, not compressed: the repo is made and read on the same machine.
        "%global _binary_payload w0.ufdio",
        "Name: debian-image-distro",
        "Version: 12",
        "Release: 1",
        "Summary: The builder image's Debian userland as rpms",
        "License: various",
        "AutoReqProv: no",
        "%description",
        "Test distribution for koji-adjutant's installroot mode.",
    ]
    for name in sorted(files):
        version = "1"
        release = "1"
        if name in packages:
            upstream = packages[name]["Version"].split(":", 1)[-1]
            upstream, _, release = upstream.rpartition("-") if "-" in upstream else (upstream, "", "0")
            version = re.sub(r"[^A-Za-z0-9._+~^]", "_", upstream)
            release = re.sub(r"[^A-Za-z0-9._+~^]", "_", release) or "0"
        lines += [
            f"%package -n {name}",
            f"Version: {version}",
            f"Release: {release}",
            f"Summary: Debian's {name}, repackaged",
            "AutoReqProv: no",
        ]
        lines += [f"Requires: {dep}" for dep in requires[name]]
        lines += [f"Provides: {provided}" for provided in ADD_PROVIDES.get(name, [])]
        if name != "filesystem":
            lines.append("Requires: filesystem")
        if name == "rpm":
            lines.append("Requires(post): dash")
        lines += [f"%description -n {name}", f"Debian's {name} from the builder image.", ""]
        if name == "rpm":
            # A real distribution's packages run scriptlets, chrooted into the installroot by
            # rpm, and they write to /dev/null. This one records what it found there, for the
            # tests (it must be mock's device node, made before the install).
            lines += [
                f"%post -n {name}",
                "if [ -c /dev/null ]; then echo device; else echo 'not a device'; fi"
                " > /var/lib/rpm-post-dev-null",
                "",
            ]
        with open(os.path.join(build, f"{name}.files"), "w", encoding="utf-8") as listing:
            listing.write("%defattr(-,root,root,-)\n")
            for path in files[name]:
                listing.write(spec_path(path) + "\n")
    all_paths = os.path.join(build, "all-paths")
    with open(all_paths, "w", encoding="utf-8") as listing:
        for name in sorted(files):
            for path in files[name]:
                listing.write(path.lstrip("/") + "\n")
    lines += [
        "%install",
        f"tar -C / --no-recursion -cf - -T {all_paths} | tar -C %{{buildroot}} -xpf -",
        # System accounts only, as Fedora's `setup` ships them: the image's uid 1000 `builder`
        # is no distribution's, and the engine adds the build user itself.
        "awk -F: '$3 < 1000 || $3 == 65534' /etc/passwd > %{buildroot}/etc/passwd",
        "awk -F: '$3 < 1000 || $3 == 65534' /etc/group > %{buildroot}/etc/group",
    ]
    for name in sorted(files):
        lines.append(f"%files -n {name} -f {build}/{name}.files")
    with open(os.path.join(out, "debian-image-distro.spec"), "w", encoding="utf-8") as spec:
        spec.write("\n".join(lines) + "\n")


def comps(out):
    def group(name, members):
        reqs = "".join(f'<packagereq type="mandatory">{m}</packagereq>' for m in members)
        return (f"<group><id>{name}</id><name>{name}</name><description>{name}</description>"
                f"<default>true</default><uservisible>true</uservisible>"
                f"<packagelist>{reqs}</packagelist></group>")
    with open(os.path.join(out, "comps.xml"), "w", encoding="utf-8") as handle:
        handle.write('<?xml version="1.0" encoding="UTF-8"?>\n<comps>'
                     + group("build", BUILD_GROUP) + group("srpm-build", SRPM_BUILD_GROUP)
                     + "</comps>\n")


if __name__ == "__main__":
    out_dir = sys.argv[1]
    names = main(out_dir)
    comps(out_dir)
    repo = os.path.join(out_dir, "repo")
    os.makedirs(repo, exist_ok=True)
    subprocess.run(
        ["rpmbuild", "-bb", "--quiet",
         "--define", f"_topdir {out_dir}/top", "--define", f"_rpmdir {repo}",
         "--define", "_rpmfilename %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
         os.path.join(out_dir, "debian-image-distro.spec")],
        check=True,
    )
    subprocess.run(["createrepo_c", "-q", "--no-database", "-g",
                    os.path.join(out_dir, "comps.xml"), repo], check=True)
    with open(os.path.join(out_dir, "packages.txt"), "w", encoding="utf-8") as listing:
        listing.write("".join(name + "\n" for name in names))
