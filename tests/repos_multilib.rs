//! Multilib dist repos (§4.9, issue 8): `distRepo` with `task_opts.multilib` makes the 32-bit
//! repo first, and the x86_64 repo then carries the i686 packages that python-multilib's
//! devel method picks plus their dependencies, resolved by dnf against the moved i386 repo.
//! Real rpmbuild RPMs, the fake hub's repo side, and createrepo_c / dnf in the builder image.

mod repos_support;

use std::path::{Path, PathBuf};

use koji_fakehub::Value;
use repos_support::{World, build_rpm_with_files, in_image};

const MULTILIB_CONF: &str = "# python-multilib's format\n[runtime]\nwhite = valgrind\nblack = httpd\n    php\n\n[devel]\nwhite =\nblack = httpd-devel\n    php-devel\n";

/// One package: the arches it is built for, its files per arch, and what each arch requires.
struct Pkg {
    name: &'static str,
    arches: &'static [&'static str],
    files: fn(&str) -> Vec<String>,
    requires: fn(&str) -> Vec<String>,
}

fn libdir(arch: &str) -> &'static str {
    if arch == "x86_64" {
        "/usr/lib64"
    } else {
        "/usr/lib"
    }
}

fn isa(arch: &str) -> &'static str {
    if arch == "x86_64" { "x86-64" } else { "x86-32" }
}

fn none(_: &str) -> Vec<String> {
    Vec::new()
}

/// Builds each package for its arches and imports the arches of one package into one build,
/// tagged into `tag`; `signed` packages get a signed copy for `aaaa1111`.
fn import(world: &World, tag: i64, dir: &Path, pkgs: &[Pkg], signed: &[&str]) {
    for pkg in pkgs {
        let mut build = None;
        for arch in pkg.arches {
            let files = (pkg.files)(arch);
            let requires = (pkg.requires)(arch);
            let file = build_rpm_with_files(
                &dir.join(arch),
                pkg.name,
                arch,
                &files.iter().map(String::as_str).collect::<Vec<_>>(),
                &requires.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            let id = world.side.import_rpm(&file, tag, build).unwrap();
            build = Some(world.side.rpm(id).unwrap().build_id);
            if signed.contains(&pkg.name) {
                world
                    .side
                    .add_signature(id, "aaaa1111", None, true)
                    .unwrap();
            }
        }
    }
}

/// `<topdir>/work/cli-dist-repo/<n>/multilib.conf`, as `koji dist-repo --multilib` uploads it;
/// returns the path relative to the work dir.
fn upload_conf(world: &World, n: &str) -> String {
    let rel = format!("cli-dist-repo/{n}/multilib.conf");
    let path = world.topdir().join("work").join(&rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, MULTILIB_CONF).unwrap();
    rel
}

fn opts(conf: &str, arches: &[&str]) -> Value {
    Value::Struct(
        [
            (
                "arch".to_owned(),
                Value::Array(arches.iter().map(|a| Value::String((*a).into())).collect()),
            ),
            ("latest".to_owned(), Value::Boolean(true)),
            ("inherit".to_owned(), Value::Boolean(false)),
            ("allow_missing_signatures".to_owned(), Value::Boolean(true)),
            ("multilib".to_owned(), Value::String(conf.into())),
        ]
        .into(),
    )
}

fn children(world: &World, parent: i64) -> Vec<koji_fakehub::Task> {
    let mut tasks: Vec<_> = world
        .hub
        .tasks()
        .into_iter()
        .filter(|t| t.parent == Some(parent))
        .collect();
    tasks.sort_by_key(|t| t.id);
    tasks
}

fn output(world: &World, task: i64, name: &str) -> Option<String> {
    world
        .hub
        .task_output(task, name)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn kojipkgs(dir: &Path) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("kojipkgs")).unwrap()).unwrap()
}

fn start(world: &World, tag_name: &str, repo_id: i64, conf: &str, arches: &[&str]) -> i64 {
    world.create(
        "distRepo",
        vec![
            Value::String(tag_name.into()),
            Value::Integer(repo_id as i32),
            Value::Array(vec![Value::String("aaaa1111".into())]),
            opts(conf, arches),
        ],
    )
}

#[actix_rt::test]
async fn x86_64_dist_repo_carries_the_devel_multilib_set_with_its_i686_deps() {
    let world = World::new().await;
    std::fs::create_dir_all(world.topdir().join("repos-dist")).unwrap();
    let tag = world.side.add_tag("ml-f1", &["x86_64", "i686"]);
    let dir: PathBuf = world.workdir.path().join("ml-rpms");
    let pkgs = [
        // A library: runtime multilib. Its i686 build needs an i686-only package and a noarch
        // one, which dnf must pull from the i386 repo.
        Pkg {
            name: "libfoo",
            arches: &["x86_64", "i686"],
            files: |a| vec![format!("{}/libfoo.so.1", libdir(a))],
            requires: |a| {
                let mut r = vec!["libfoo-common".to_owned()];
                if a == "i686" {
                    r.push("libextra".to_owned());
                }
                r
            },
        },
        Pkg {
            name: "libfoo-common",
            arches: &["noarch"],
            files: |_| vec!["/usr/share/libfoo/data".to_owned()],
            requires: none,
        },
        Pkg {
            name: "libextra",
            arches: &["i686"],
            files: |_| vec!["/usr/share/libextra/data".to_owned()],
            requires: none,
        },
        // -devel: multilib under the devel method only.
        Pkg {
            name: "libfoo-devel",
            arches: &["x86_64", "i686"],
            files: |_| vec!["/usr/include/foo.h".to_owned()],
            requires: |a| vec![format!("libfoo({})", isa(a))],
        },
        // Not multilib: a tool, and a -devel on the config's black list.
        Pkg {
            name: "foo-tools",
            arches: &["x86_64", "i686"],
            files: |_| vec!["/usr/bin/foo".to_owned()],
            requires: none,
        },
        Pkg {
            name: "php-devel",
            arches: &["x86_64", "i686"],
            files: |_| vec!["/usr/include/php.h".to_owned()],
            requires: none,
        },
    ];
    import(&world, tag, &dir, &pkgs, &["libfoo"]);
    let conf = upload_conf(&world, "1");
    let (repo_id, _) = world
        .side
        .dist_repo_init(&world.hub, tag, &["x86_64", "i686", "aarch64"], false)
        .unwrap();

    // aarch64 is no multilib arch: kojid makes it with the 32-bit ones, before x86_64.
    let id = start(
        &world,
        "ml-f1",
        repo_id,
        &conf,
        &["x86_64", "i686", "aarch64"],
    );
    let result = world.run(id).await;
    let kids = children(&world, id);
    let labels: Vec<_> = kids.iter().map(|t| t.label.clone().unwrap()).collect();
    assert_eq!(
        labels,
        ["i386", "aarch64", "x86_64"],
        "the non-multilib arches are made first"
    );
    let x86 = kids[2].id;
    // Both were moved before the x86_64 task was created.
    let parent_calls: Vec<String> = world
        .hub
        .called_methods()
        .into_iter()
        .filter(|m| m == "host.subtask" || m == "host.distRepoMove")
        .collect();
    assert_eq!(
        parent_calls,
        [
            "host.subtask",
            "host.subtask",
            "host.distRepoMove",
            "host.distRepoMove",
            "host.subtask",
            "host.distRepoMove"
        ]
    );
    assert!(
        result.is_ok(),
        "{result:?}\nmultilib.log:\n{}",
        output(&world, x86, "multilib.log").unwrap_or_default()
    );

    let conf_up = output(&world, x86, "dnf.conf-koji-x86_64").expect("dnf.conf uploaded");
    let i386_dir = world.side.repo_dir(repo_id).unwrap().join("i386");
    assert!(
        conf_up.starts_with("\n[main]\ndebuglevel=2\n")
            && conf_up.contains("\ngpgcheck=0\n")
            && conf_up.contains(&format!(
                "\n[koji-{x86}]\nname=koji multilib task\nbaseurl=file://{}\nenabled=1\n",
                i386_dir.display()
            ))
            && conf_up.contains(&format!("/{x86}/dnf\n")),
        "{conf_up}"
    );
    assert!(output(&world, x86, "missing_multilib.log").is_none());
    assert!(output(&world, kids[0].id, "dnf.conf-koji-i386").is_none());

    let archdir = world.side.repo_dir(repo_id).unwrap().join("x86_64");
    let pkgs64 = kojipkgs(&archdir);
    for wanted in [
        "libfoo-1.0-1.i686.rpm",
        "libfoo-devel-1.0-1.i686.rpm",
        "libextra-1.0-1.i686.rpm",
    ] {
        assert_eq!(
            pkgs64.get(wanted).map(|info| &info["_multilib"]),
            Some(&serde_json::json!(true)),
            "{wanted}: {pkgs64:?}"
        );
    }
    assert_eq!(pkgs64["libfoo-1.0-1.i686.rpm"]["sigkey"], "aaaa1111");
    // kojid points `_pkgpath` of a multilib entry at the 32-bit repo's file.
    assert_eq!(
        pkgs64["libextra-1.0-1.i686.rpm"]["_pkgpath"],
        i386_dir
            .join("Packages/l/libextra-1.0-1.i686.rpm")
            .display()
            .to_string()
    );
    assert!(pkgs64["libfoo-1.0-1.x86_64.rpm"].get("_multilib").is_none());
    for unwanted in ["foo-tools-1.0-1.i686.rpm", "php-devel-1.0-1.i686.rpm"] {
        assert!(!pkgs64.contains_key(unwanted), "{unwanted}: {pkgs64:?}");
    }
    let pkglist = std::fs::read_to_string(archdir.join("pkglist")).unwrap();
    assert!(
        pkglist.contains("Packages/l/libfoo-devel-1.0-1.i686.rpm\n")
            && pkglist.contains("Packages/l/libextra-1.0-1.i686.rpm\n")
            && !pkglist.contains("foo-tools-1.0-1.i686")
            && pkglist.matches("libfoo-common-1.0-1.noarch.rpm").count() == 1,
        "{pkglist}"
    );
    assert!(archdir.join("Packages/l/libfoo-1.0-1.i686.rpm").is_file());
    // The i386 repo is plain: no multilib there.
    let pkgs32 = kojipkgs(&i386_dir);
    assert!(pkgs32.contains_key("foo-tools-1.0-1.i686.rpm"));
    assert!(!pkgs32.contains_key("libfoo-1.0-1.x86_64.rpm"));

    // dnf sees the i686 packages in the x86_64 repo, and the i686 devel stack installs from
    // that repo alone.
    let script = format!(
        "set -e; dnf -q --setopt=reposdir=/dev/null --repofrompath=d,file://{dir} --repo=d repoquery --qf '%{{name}}.%{{arch}}' '*'; \
         echo ---; dnf -q --setopt=reposdir=/dev/null --repofrompath=d,file://{dir} --repo=d --installroot=/tmp/root --releasever=1 --nogpgcheck \
         install -y --downloadonly --destdir=/tmp/dl libfoo-devel.i686 >/dev/null; ls /tmp/dl",
        dir = archdir.display()
    );
    let ran = in_image(
        &format!("repos-ml-{}", std::process::id()),
        &world.topdir(),
        &script,
    );
    let listed = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{listed}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let (query, downloaded) = listed.split_once("---").unwrap();
    for name in [
        "libfoo.i686",
        "libfoo-devel.i686",
        "libextra.i686",
        "libfoo.x86_64",
    ] {
        assert!(query.lines().any(|l| l == name), "{name} in {query}");
    }
    assert!(!query.contains("foo-tools.i686"), "{query}");
    for file in [
        "libfoo-devel-1.0-1.i686.rpm",
        "libfoo-1.0-1.i686.rpm",
        "libextra-1.0-1.i686.rpm",
        "libfoo-common-1.0-1.noarch.rpm",
    ] {
        assert!(downloaded.contains(file), "{file} in {downloaded}");
    }
}

#[actix_rt::test]
async fn missing_32_bit_twins_fail_with_missing_multilib_log_and_depsolve_errors_with_dnfs_problems()
 {
    let world = World::new().await;
    std::fs::create_dir_all(world.topdir().join("repos-dist")).unwrap();

    // A -devel built for x86_64 only: its i686 twin is missing (kojid's fs_missing case).
    let tag = world.side.add_tag("ml-f2", &["x86_64", "i686"]);
    let pkgs = [
        Pkg {
            name: "libqux-devel",
            arches: &["x86_64"],
            files: |_| vec!["/usr/include/qux.h".to_owned()],
            requires: none,
        },
        Pkg {
            name: "libok",
            arches: &["x86_64", "i686"],
            files: |a| vec![format!("{}/libok.so.1", libdir(a))],
            requires: none,
        },
    ];
    import(&world, tag, &world.workdir.path().join("f2"), &pkgs, &[]);
    let conf = upload_conf(&world, "2");
    let (repo_id, _) = world
        .side
        .dist_repo_init(&world.hub, tag, &["x86_64", "i686"], false)
        .unwrap();
    let id = start(&world, "ml-f2", repo_id, &conf, &["x86_64", "i686"]);
    let error = world.run(id).await.unwrap_err().to_string();
    let kids = children(&world, id);
    let x86 = kids
        .iter()
        .find(|t| t.label.as_deref() == Some("x86_64"))
        .unwrap();
    assert_eq!(x86.state, koji_fakehub::TaskState::Failed);
    let result = x86.result_xml.clone().unwrap_or_default();
    assert!(
        result.contains("multilib packages missing. See missing_multilib.log"),
        "{error}\n{result}"
    );
    let log = output(&world, x86.id, "missing_multilib.log").expect("missing_multilib.log");
    let i386_dir = world.side.repo_dir(repo_id).unwrap().join("i386");
    assert_eq!(
        log,
        format!(
            "The following multilib files were missing:\n{}\n",
            i386_dir
                .join("Packages/l/libqux-devel-1.0-1.i686.rpm")
                .display()
        )
    );
    assert!(output(&world, x86.id, "dnf.conf-koji-x86_64").is_some());
    assert_eq!(
        world.side.repo(repo_id).unwrap().state,
        0,
        "repo stays INIT"
    );

    // The twin is there but needs something the i386 repo lacks: dnf's depsolve fails.
    let tag = world.side.add_tag("ml-f3", &["x86_64", "i686"]);
    let pkgs = [Pkg {
        name: "libbar-devel",
        arches: &["x86_64", "i686"],
        files: |_| vec!["/usr/include/bar.h".to_owned()],
        requires: |a| {
            if a == "i686" {
                vec!["libbar-helper".to_owned()]
            } else {
                Vec::new()
            }
        },
    }];
    import(&world, tag, &world.workdir.path().join("f3"), &pkgs, &[]);
    let (repo_id, _) = world
        .side
        .dist_repo_init(&world.hub, tag, &["x86_64", "i686"], false)
        .unwrap();
    let id = start(&world, "ml-f3", repo_id, &conf, &["x86_64", "i686"]);
    assert!(world.run(id).await.is_err());
    let kids = children(&world, id);
    let x86 = kids
        .iter()
        .find(|t| t.label.as_deref() == Some("x86_64"))
        .unwrap();
    // As in kojid, dnf's depsolve error fails the task with dnf's problems, and no
    // missing_multilib.log is written.
    let result = x86.result_xml.clone().unwrap_or_default();
    assert!(
        result.contains("dnf depsolve was unsuccessful")
            && result.contains("nothing provides libbar-helper needed by libbar-devel-1.0-1.i686"),
        "{result}"
    );
    assert!(output(&world, x86.id, "missing_multilib.log").is_none());
    assert!(output(&world, x86.id, "dnf.conf-koji-x86_64").is_some());
}

#[actix_rt::test]
async fn a_multilib_option_that_is_not_a_path_is_a_parameter_error() {
    let world = World::new().await;
    std::fs::create_dir_all(world.topdir().join("repos-dist")).unwrap();
    let tag = world.side.add_tag("ml-f4", &["x86_64"]);
    let (repo_id, _) = world
        .side
        .dist_repo_init(&world.hub, tag, &["x86_64"], false)
        .unwrap();
    for (multilib, wanted) in [
        (
            Value::Boolean(true),
            "must be the path of a multilib config",
        ),
        (
            Value::String("../../etc/multilib.conf".into()),
            "must be a path relative to the work dir",
        ),
        // kojid loads the 32-bit repo's kojipkgs before the config.
        (
            Value::String("cli-dist-repo/none/multilib.conf".into()),
            "needs the i386 repo of dist repo",
        ),
        (
            Value::String("cli-dist-repo/none/multilib.conf".into()),
            "cannot read the multilib config",
        ),
    ] {
        if wanted == "cannot read the multilib config" {
            let i386 = world.side.repo_dir(repo_id).unwrap().join("i386");
            std::fs::create_dir_all(&i386).unwrap();
            std::fs::write(i386.join("kojipkgs"), "{}").unwrap();
        }
        let mut task_opts = match opts("x", &["x86_64"]) {
            Value::Struct(map) => map,
            _ => unreachable!(),
        };
        task_opts.insert("multilib".into(), multilib);
        task_opts.insert(
            "arch".into(),
            Value::Array(vec![Value::String("x86_64".into())]),
        );
        let id = world.create(
            "createdistrepo",
            vec![
                Value::String("ml-f4".into()),
                Value::Integer(repo_id as i32),
                Value::String("x86_64".into()),
                Value::Array(Vec::new()),
                Value::Struct(task_opts),
            ],
        );
        let error = world.run(id).await.unwrap_err().to_string();
        assert!(error.contains(wanted), "{wanted}: {error}");
    }
}
