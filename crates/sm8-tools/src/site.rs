//! `pack-site`: the last step of `make build`. Gives the browser bundle (`sm8-webhooks.js`, `sm8-webhooks_bg.wasm`,
//! `sm8-webhooks.css` in `target/site/pkg`) a name that changes with its content, so that browsers may keep it
//! for ever (`Cache-Control: immutable`), and writes each file brotli- and gzip-compressed beside it, so that the
//! server sends the smallest form a browser accepts without compressing on every request.
//!
//! The three files share one name, `sm8-webhooks.{hash}`, the hash taken over all three: the server finds it by
//! the one `.js` of that shape in the directory (`server::web`), and Leptos derives the script's, the bundle's
//! and the stylesheet's names from it. The bundles of the areas that have their own (`app::Area`), when built
//! (`sm8-webhooks-portal.js`, `_bg.wasm`, `.css`; `sm8-webhooks-dashboard…`), join the set as
//! `sm8-webhooks.{hash}-portal…`. Packed sets of earlier builds are removed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

/// Hex digits of the content hash in the names.
const HASH_DIGITS: usize = 16;
/// brotli's best quality: the bundle is compressed once per build.
const BROTLI_QUALITY: u32 = 11;
const BROTLI_WINDOW: u32 = 24;

#[derive(Debug, Clone, clap::Args)]
pub struct PackSiteArgs {
    /// The bundle's directory.
    #[arg(long, default_value = "target/site/pkg")]
    pub pkg: PathBuf,
    /// The bundle's name, as `wasm-bindgen --out-name` was given it.
    #[arg(long, default_value = app::OUTPUT_NAME)]
    pub name: String,
}

/// The packed set: its shared name and the files written.
#[derive(Debug)]
pub struct Packed {
    pub name: String,
    pub files: Vec<PathBuf>,
}

pub fn run_cli(args: PackSiteArgs) -> anyhow::Result<()> {
    let packed = pack(&args.pkg, &args.name)?;
    println!("packed the bundle as {} ({} files)", packed.name, packed.files.len());
    Ok(())
}

/// The files of the bundle named `name`: its script, its WASM and its stylesheet.
fn bundle_files(name: &str) -> [String; 3] {
    [format!("{name}.js"), format!("{name}_bg.wasm"), format!("{name}.css")]
}

/// Packs the bundle named `name` in `pkg`.
pub fn pack(pkg: &Path, name: &str) -> anyhow::Result<Packed> {
    let mut sources = Vec::from(bundle_files(name));
    for area in app::Area::ALL {
        let [script, wasm, stylesheet] = bundle_files(&format!("{name}{}", area.suffix()));
        if pkg.join(&script).is_file() {
            sources.extend([script, wasm, stylesheet]);
        }
    }
    let mut hasher = Sha256::new();
    let mut contents = Vec::with_capacity(sources.len());
    for source in &sources {
        let path = pkg.join(source);
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
        contents.push(bytes);
    }
    let hash: String = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<String>()[..HASH_DIGITS]
        .to_owned();
    let packed_name = format!("{name}.{hash}");
    remove_earlier_sets(pkg, name, &packed_name)?;
    let mut files = Vec::new();
    for (source, bytes) in sources.iter().zip(&contents) {
        let target = pkg.join(source.replacen(name, &packed_name, 1));
        fs::write(&target, bytes).with_context(|| format!("writing {}", target.display()))?;
        let brotli = suffixed(&target, "br");
        fs::write(&brotli, compress_brotli(bytes)?).with_context(|| format!("writing {}", brotli.display()))?;
        let gzip = suffixed(&target, "gz");
        fs::write(&gzip, compress_gzip(bytes)?).with_context(|| format!("writing {}", gzip.display()))?;
        files.extend([target, brotli, gzip]);
    }
    Ok(Packed {
        name: packed_name,
        files,
    })
}

/// Removes the packed files of other builds: `{name}.{hash}…` whose hash is not `keep`'s.
fn remove_earlier_sets(pkg: &Path, name: &str, keep: &str) -> anyhow::Result<()> {
    let prefix = format!("{name}.");
    for entry in fs::read_dir(pkg).with_context(|| format!("listing {}", pkg.display()))? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let packed = rest.len() > HASH_DIGITS
            && rest[..HASH_DIGITS].bytes().all(|byte| byte.is_ascii_hexdigit())
            && matches!(rest.as_bytes()[HASH_DIGITS], b'.' | b'_' | b'-');
        if packed && !file_name.starts_with(keep) {
            fs::remove_file(entry.path()).with_context(|| format!("removing {file_name}"))?;
        }
    }
    Ok(())
}

fn suffixed(path: &Path, extension: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(extension);
    PathBuf::from(name)
}

fn compress_brotli(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut out, 64 * 1024, BROTLI_QUALITY, BROTLI_WINDOW);
        writer.write_all(bytes)?;
        writer.flush()?;
    }
    Ok(out)
}

fn compress_gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn bundle(pkg: &Path, script: &str) {
        fs::write(pkg.join("sm8-webhooks.js"), script).unwrap();
        fs::write(
            pkg.join("sm8-webhooks_bg.wasm"),
            b"\0asm wasm bytes wasm bytes wasm bytes",
        )
        .unwrap();
        fs::write(pkg.join("sm8-webhooks.css"), "body { color: black; } ".repeat(100)).unwrap();
    }

    fn names(pkg: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(pkg)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_bundle_is_named_by_its_content_and_written_compressed_beside_itself() {
        let dir = tempfile::TempDir::new().unwrap();
        bundle(dir.path(), "export function hydrate() {}");
        let packed = pack(dir.path(), "sm8-webhooks").unwrap();
        let hash = packed.name.strip_prefix("sm8-webhooks.").unwrap();
        assert_eq!(hash.len(), HASH_DIGITS);
        let css = fs::read(dir.path().join("sm8-webhooks.css")).unwrap();
        let brotli = fs::read(dir.path().join(format!("{}.css.br", packed.name))).unwrap();
        let mut unbrotlied = Vec::new();
        brotli::Decompressor::new(&brotli[..], 4096)
            .read_to_end(&mut unbrotlied)
            .unwrap();
        assert_eq!(unbrotlied, css);
        assert!(brotli.len() < css.len() / 10, "repetitive text compresses");
        let gzip = fs::read(dir.path().join(format!("{}_bg.wasm.gz", packed.name))).unwrap();
        let mut ungzipped = Vec::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_end(&mut ungzipped)
            .unwrap();
        assert_eq!(ungzipped, fs::read(dir.path().join("sm8-webhooks_bg.wasm")).unwrap());
        assert_eq!(packed.files.len(), 9);

        // The same content packs to the same name.
        assert_eq!(pack(dir.path(), "sm8-webhooks").unwrap().name, packed.name);
    }

    #[test]
    fn a_new_build_replaces_the_packed_files_of_the_last() {
        let dir = tempfile::TempDir::new().unwrap();
        bundle(dir.path(), "export function hydrate() { /* one */ }");
        let first = pack(dir.path(), "sm8-webhooks").unwrap();
        bundle(dir.path(), "export function hydrate() { /* two */ }");
        let second = pack(dir.path(), "sm8-webhooks").unwrap();
        assert_ne!(first.name, second.name);
        let left = names(dir.path());
        assert!(left.iter().all(|name| !name.starts_with(&first.name)), "{left:?}");
        assert_eq!(
            left.iter().filter(|name| name.starts_with(&second.name)).count(),
            9,
            "{left:?}"
        );
        assert!(
            left.contains(&"sm8-webhooks.js".to_owned()),
            "the unpacked bundle stays: {left:?}"
        );
    }

    #[test]
    fn each_areas_bundle_joins_the_set_under_its_name() {
        let dir = tempfile::TempDir::new().unwrap();
        bundle(dir.path(), "export function hydrate() {}");
        let alone = pack(dir.path(), "sm8-webhooks").unwrap();
        for area in ["portal", "dashboard"] {
            let area_bundle = format!("sm8-webhooks-{area}");
            fs::write(
                dir.path().join(format!("{area_bundle}.js")),
                "export function hydrate() {}",
            )
            .unwrap();
            fs::write(
                dir.path().join(format!("{area_bundle}_bg.wasm")),
                format!("\0asm {area}"),
            )
            .unwrap();
            fs::write(dir.path().join(format!("{area_bundle}.css")), "main {}").unwrap();
        }
        let packed = pack(dir.path(), "sm8-webhooks").unwrap();
        assert_ne!(packed.name, alone.name, "the areas' files are part of the hash");
        assert_eq!(packed.files.len(), 27);
        let left = names(dir.path());
        for file in [
            "-portal.js",
            "-portal_bg.wasm.br",
            "-dashboard.css.gz",
            "-dashboard_bg.wasm",
        ] {
            assert!(left.contains(&format!("{}{file}", packed.name)), "{file}: {left:?}");
        }
        assert!(
            left.contains(&"sm8-webhooks-portal.js".to_owned()),
            "the unpacked bundles stay: {left:?}"
        );
        assert!(left.iter().all(|name| !name.starts_with(&alone.name)), "{left:?}");
    }
}
