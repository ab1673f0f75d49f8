//! The release as code, checked before any tag exists: both GitHub workflows pass actionlint
//! (with shellcheck on every `run:` block), and the release workflow's build matrix, the
//! archives scripts/release packs from it and the Krew manifest rendered from `.krew.yaml`
//! name the same five platforms, archives and binaries.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use dns_doctor_tests::{cmd, scripts, tools};
use serde::Deserialize;
use serde_norway::Value;

/// actionlint's version; the Go module proxy serves it.
const ACTIONLINT: &str = "v1.7.12";
/// actionlint skips shell checks silently when it finds no shellcheck, so it is named.
const SHELLCHECK: &str = "/usr/bin/shellcheck";
/// The Krew platforms a release ships.
const PLATFORMS: [&str; 5] = [
    "darwin/amd64",
    "darwin/arm64",
    "linux/amd64",
    "linux/arm64",
    "windows/amd64",
];
const LIMIT: Duration = Duration::from_secs(120);

fn actionlint(files: &[&Path]) -> cmd::Ran {
    assert!(
        Path::new(SHELLCHECK).is_file(),
        "{SHELLCHECK} is missing (Debian package shellcheck; tests/install-deps installs it)"
    );
    let bin = tools::go_install(
        "github.com/rhysd/actionlint/cmd/actionlint",
        ACTIONLINT,
        "actionlint",
    );
    let mut argv = vec![
        bin.to_str().expect("UTF-8 path").to_string(),
        "-no-color".into(),
        "-shellcheck".into(),
        SHELLCHECK.into(),
    ];
    argv.extend(
        files
            .iter()
            .map(|f| f.to_str().expect("UTF-8 path").to_string()),
    );
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    cmd::run(&argv, LIMIT)
}

#[test]
fn the_workflows_pass_actionlint_and_shellcheck() {
    // The linter must be able to fail, its shellcheck pass included.
    let scratch = tempfile::tempdir().expect("temp dir");
    let dir = scratch.path().join(".github/workflows");
    std::fs::create_dir_all(&dir).expect("workflow dir");
    let bad = dir.join("bad.yml");
    std::fs::write(
        &bad,
        "name: bad\non: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      \
         - run: echo $HOME\n      - run: echo \"${{ matrix.nope }}\"\n",
    )
    .expect("write bad.yml");
    let ran = actionlint(&[&bad]);
    assert!(
        !ran.status.success()
            && ran.stdout.contains("SC2086")
            && ran.stdout.contains("property \"nope\" is not defined"),
        "actionlint did not report an unquoted $HOME (shellcheck SC2086) and an undefined \
         matrix key:\n{}\n{}",
        ran.stdout,
        ran.stderr
    );

    let root = scripts::root();
    let mut workflows: Vec<_> = std::fs::read_dir(root.join(".github/workflows"))
        .expect(".github/workflows")
        .map(|e| e.expect("entry").path())
        .collect();
    workflows.sort();
    let names: BTreeSet<String> = workflows
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains("ci.yml") && names.contains("release.yml"),
        "workflows: {names:?}"
    );
    let files: Vec<&Path> = workflows.iter().map(|p| p.as_path()).collect();
    let ran = actionlint(&files);
    assert!(
        ran.status.success(),
        "actionlint {ACTIONLINT} finds problems in {names:?}:\n{}\n{}",
        ran.stdout,
        ran.stderr
    );
}

/// One entry of the release workflow's build matrix.
#[derive(Debug, Deserialize)]
struct Build {
    platform: String,
    dir: String,
    target: String,
    bin: String,
}

/// What the test reads of a rendered Krew manifest.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    metadata: Metadata,
    spec: Spec,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    version: String,
    homepage: String,
    caveats: String,
    platforms: Vec<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    selector: Selector,
    uri: String,
    sha256: String,
    bin: String,
    files: Vec<FileOp>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Selector {
    match_labels: Labels,
}

#[derive(Debug, Deserialize)]
struct Labels {
    os: String,
    arch: String,
}

#[derive(Debug, Deserialize)]
struct FileOp {
    from: String,
    to: String,
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// The steps of one job of a workflow.
fn steps<'a>(workflow: &'a Value, job: &str) -> &'a [Value] {
    workflow["jobs"][job]["steps"]
        .as_sequence()
        .unwrap_or_else(|| panic!("release.yml has no job {job} with steps"))
}

fn step_using<'a>(steps: &'a [Value], action: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with(&format!("{action}@")))
        })
        .unwrap_or_else(|| panic!("no step uses {action}"))
}

#[test]
fn the_release_matrix_archives_and_krew_manifest_agree() {
    let root = scripts::root();
    let workflow = yaml(&root.join(".github/workflows/release.yml"));
    let builds: Vec<Build> = serde_norway::from_value(
        workflow["jobs"]["build"]["strategy"]["matrix"]["include"].clone(),
    )
    .expect("jobs.build.strategy.matrix.include of release.yml");
    let platforms: BTreeSet<&str> = builds.iter().map(|b| b.platform.as_str()).collect();
    assert_eq!(
        platforms,
        BTreeSet::from(PLATFORMS),
        "platforms built by release.yml"
    );
    assert_eq!(
        builds.len(),
        PLATFORMS.len(),
        "one build per platform: {builds:#?}"
    );
    for b in &builds {
        let (os, arch) = b.platform.split_once('/').expect("os/arch");
        assert_eq!(
            b.dir,
            format!("{os}-{arch}"),
            "artifact folder of {}",
            b.platform
        );
        let want_bin = if os == "windows" {
            "kubectl-dns_doctor.exe"
        } else {
            "kubectl-dns_doctor"
        };
        assert_eq!(b.bin, want_bin, "binary of {}", b.platform);
        let rust_arch = if arch == "amd64" { "x86_64" } else { "aarch64" };
        assert!(
            b.target.starts_with(&format!("{rust_arch}-")),
            "{} builds {}",
            b.platform,
            b.target
        );
        if os == "linux" {
            assert!(
                b.target.ends_with("-linux-musl"),
                "{} is not static musl",
                b.target
            );
        }
    }

    // The package job hands scripts/release the folder the build artifacts were downloaded to.
    let package = steps(&workflow, "package");
    let downloaded = step_using(package, "actions/download-artifact")["with"]["path"]
        .as_str()
        .expect("download-artifact with a path");
    let packs = package.iter().filter_map(|s| s["run"].as_str()).any(|run| {
        run.contains(&format!("scripts/release --prebuilt {downloaded} "))
            && run.contains("--require-all")
    });
    assert!(
        packs,
        "the package job must run scripts/release --prebuilt {downloaded} --require-all"
    );

    // Pack stand-ins for the five binaries exactly as the package job does, and read what
    // scripts/release makes of them.
    let scratch = tempfile::tempdir().expect("temp dir");
    let prebuilt = scratch.path().join("prebuilt");
    for b in &builds {
        let dir = prebuilt.join(&b.dir);
        std::fs::create_dir_all(&dir).expect("platform dir");
        std::fs::write(dir.join(&b.bin), format!("stand-in for {}\n", b.platform)).expect("bin");
    }
    let dist = scratch.path().join("dist");
    let release = root.join("scripts/release");
    let ran = cmd::run(
        &[
            release.to_str().expect("UTF-8"),
            "--prebuilt",
            prebuilt.to_str().expect("UTF-8"),
            "--out",
            dist.to_str().expect("UTF-8"),
            "--require-all",
        ],
        LIMIT,
    )
    .ok("scripts/release --prebuilt --require-all");

    let version = env!("CARGO_PKG_VERSION");
    let tag = format!("v{version}");
    let manifest: Manifest = serde_norway::from_str(
        &std::fs::read_to_string(dist.join("dns-doctor.yaml")).expect("dist/dns-doctor.yaml"),
    )
    .expect("the rendered manifest is a Krew plugin");
    assert_eq!(manifest.metadata.name, "dns-doctor");
    assert_eq!(manifest.spec.version, tag);
    let owner_repo = manifest
        .spec
        .homepage
        .strip_prefix("https://github.com/")
        .expect("homepage on GitHub");
    let owner = owner_repo.split('/').next().expect("owner");
    // The release pushes ghcr.io/<repository owner>/debug:<tag> and refuses any other default.
    let image = format!("ghcr.io/{owner}/debug:{tag}");
    assert_eq!(dns_doctor_probe::DEFAULT_IMAGE, image);
    assert!(
        manifest.spec.caveats.contains(&image),
        "the caveats name the debug image {image}"
    );

    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).expect("SHA256SUMS");
    let mut seen = BTreeSet::new();
    for p in &manifest.spec.platforms {
        let labels = &p.selector.match_labels;
        let platform = format!("{}/{}", labels.os, labels.arch);
        let build = builds
            .iter()
            .find(|b| b.platform == platform)
            .unwrap_or_else(|| {
                panic!("the manifest lists {platform}, which release.yml does not build")
            });
        assert!(seen.insert(platform.clone()), "{platform} listed twice");
        let archive = format!("kubectl-dns_doctor-{tag}-{}.tar.gz", build.dir);
        assert_eq!(
            p.uri,
            format!("https://github.com/{owner_repo}/releases/download/{tag}/{archive}"),
            "URI of {platform}"
        );
        let path = dist.join(&archive);
        let sha = cmd::run(&["sha256sum", path.to_str().expect("UTF-8")], LIMIT).ok("sha256sum");
        let sha = sha.stdout.split_whitespace().next().expect("a digest");
        assert_eq!(p.sha256, sha, "sha256 of {archive}");
        assert!(
            sums.lines().any(|l| l == format!("{sha}  {archive}")),
            "SHA256SUMS lacks {archive}:\n{sums}"
        );
        assert_eq!(p.bin, build.bin, "bin of {platform}");
        // kubectl's plugin completion script is a shell script: every platform but Windows.
        let mut shipped = vec!["LICENSE", build.bin.as_str()];
        if labels.os != "windows" {
            shipped.push("kubectl_complete-dns_doctor");
        }
        let copied: BTreeSet<(&str, &str)> = p
            .files
            .iter()
            .map(|f| (f.from.as_str(), f.to.as_str()))
            .collect();
        assert_eq!(
            copied,
            shipped.iter().map(|f| (*f, ".")).collect::<BTreeSet<_>>(),
            "files of {platform}"
        );
        let listing = cmd::run(&["tar", "-tzf", path.to_str().expect("UTF-8")], LIMIT).ok("tar");
        let members: Vec<&str> = listing.stdout.lines().collect();
        assert_eq!(members, shipped, "members of {archive}");
    }
    assert_eq!(
        seen,
        PLATFORMS.iter().map(|p| p.to_string()).collect(),
        "platforms of the rendered manifest; scripts/release said:\n{}",
        ran.stdout
    );
}
