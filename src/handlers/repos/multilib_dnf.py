# Multilib helper of koji-adjutant's createdistrepo (src/handlers/repos/multilib.rs).
#
# Runs in the repo tool container (or on the host with repo_tools = host) with python3-dnf.
# The multilib *method* is decided in Rust; this script only does what needs libsolv:
#
#   inspect REQUEST RESULT  read the headers of the 64-bit repo's RPMs (name, arch, files,
#                           provides), as kojid's `dnfbase.sack.add_cmdline_package` does;
#   resolve REQUEST RESULT  load the already moved 32-bit dist repo through the
#                           dnf.conf-koji-<arch> that the worker wrote, with the 64-bit arch as
#                           the transaction arch, mark the chosen multilib packages for install
#                           and resolve their dependencies against that repo alone (no system
#                           repo), as kojid's createDistRepoTask.do_multilib does. kojid passes
#                           file paths to Base.install, which matches package specs and so
#                           finds nothing ("No match for argument"); the packages are picked
#                           here by file name from the repo's metadata instead.
#
# REQUEST and RESULT are JSON files. Exit status 0 means RESULT was written; a failed depsolve
# is a result too ({"ok": false, "problems": [...]}), so that the worker can report it.

import json
import os
import sys

import dnf


def inspect(request):
    base = dnf.Base()
    base.conf.cachedir = request["cachedir"]
    base.fill_sack(load_system_repo=False, load_available_repos=False)
    packages = []
    for path in request["paths"]:
        pkg = base.sack.add_cmdline_package(path)
        packages.append(
            {
                "path": path,
                "name": pkg.name,
                "arch": pkg.arch,
                "files": list(pkg.files),
                "provides": [str(p).split(" ", 1)[0] for p in pkg.provides],
            }
        )
    return {"packages": packages}


def resolve(request):
    conf = dnf.conf.Conf()
    conf.config_file_path = request["dnf_conf"]
    conf.read(filename=request["dnf_conf"])
    # kojid keeps dnf's default cachedir (it runs as root); the tool user needs its own.
    conf.cachedir = request["cachedir"]
    conf.reposdir = []
    base = dnf.Base(conf)
    # kojid's transaction_arch: the 64-bit arch, which accepts the 32-bit packages.
    base.conf.arch = request["arch"]
    base.read_all_repos()
    base.fill_sack(load_system_repo=False, load_available_repos=True)
    by_file = {}
    for pkg in base.sack.query().available():
        by_file.setdefault(os.path.basename(pkg.location), pkg)
    unknown = [name for name in request["install"] if name not in by_file]
    if unknown:
        return {
            "ok": False,
            "problems": ["No match for argument: %s" % name for name in unknown],
            "install": [],
        }
    for name in request["install"]:
        base.package_install(by_file[name], strict=True)
    try:
        base.resolve()
    except dnf.exceptions.DepsolveError as error:
        return {"ok": False, "problems": str(error).splitlines(), "install": []}
    install = []
    for pkg in base.transaction.install_set:
        install.append(
            {
                "file": os.path.basename(pkg.location),
                "name": pkg.name,
                "arch": pkg.arch,
                "repo": pkg.reponame,
            }
        )
    install.sort(key=lambda p: p["file"])
    return {"ok": True, "problems": [], "install": install}


def main(argv):
    if len(argv) != 4 or argv[1] not in ("inspect", "resolve"):
        sys.stderr.write("usage: multilib_dnf.py inspect|resolve REQUEST RESULT\n")
        return 2
    with open(argv[2], encoding="utf-8") as handle:
        request = json.load(handle)
    result = inspect(request) if argv[1] == "inspect" else resolve(request)
    with open(argv[3], "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
