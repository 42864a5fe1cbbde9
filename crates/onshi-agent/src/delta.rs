//! Delta packages (差分パッケージ): building one from two packages (`onshi release delta`) and
//! applying one on the device with bounded memory.
//!
//! The format is chunked zstd "patch-from": the new package is cut into chunks of at most
//! [`CHUNK`] bytes, and each chunk is one zstd frame compressed with a window of the base
//! package (at most [`MAX_REFERENCE`] bytes) as its reference prefix. Applying a chunk needs
//! only that window, the chunk and its frame in memory, so a 300 MB package applies in about
//! 20 MiB, whatever its size (one `zstd --patch-from` frame would need the whole base in
//! memory). The builder finds each chunk's window by content: anchors (positions where a
//! rolling hash of the last 32 bytes has its low bits zero) of the chunk are looked up in the
//! base, and the window is centred on the median shift, so code that moved keeps its matches.
//!
//! ```text
//! "ONSHIDL1" base_size:u64 base_sha256:[32] result_size:u64 result_sha256:[32]
//! then frames until result_size bytes are rebuilt:
//!   base_offset:u64 base_len:u32 out_len:u32 frame_len:u32 frame:[frame_len]
//! ```
//! (integers little-endian). Nothing in the file is trusted for more than where to look: the
//! caller verifies the base before and the result after against the signed manifest.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use onshi_core::release::Sha256;
use sha2::{Digest, Sha256 as Hasher};
use zstd::zstd_safe::{self, CCtx, CParameter, DCtx, DParameter};

const MAGIC: &[u8; 8] = b"ONSHIDL1";
/// The most bytes of the new package one frame rebuilds.
pub const CHUNK: usize = 4 << 20;
/// The base bytes on either side of a chunk's expected place that its window also covers.
const MARGIN: usize = 4 << 20;
/// The largest reference window a frame may name: what the applier allocates at most.
pub const MAX_REFERENCE: usize = CHUNK + 2 * MARGIN;
/// Rolling-hash width and anchor density (one anchor every 2^ANCHOR_BITS bytes on average).
const ANCHOR_WINDOW: usize = 32;
const ANCHOR_BITS: u32 = 8;
/// The largest frame the applier reads: a chunk that does not compress at all, plus zstd's
/// bound on the overhead.
fn max_frame() -> usize {
    zstd_safe::compress_bound(CHUNK)
}

/// Why a delta could not be built or applied.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("not a delta package: {0}")]
    Malformed(String),
    #[error("the base does not match the delta: {0}")]
    WrongBase(String),
    #[error("zstd: {0}")]
    Zstd(&'static str),
    #[error(
        "the rebuilt package is not the one signed: expected {expected} ({expected_size} bytes), got {got} ({got_size} bytes)"
    )]
    WrongResult {
        expected: Sha256,
        expected_size: u64,
        got: Sha256,
        got_size: u64,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> DeltaError + '_ {
    move |source| DeltaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn zstd_err(code: usize) -> DeltaError {
    DeltaError::Zstd(zstd_safe::get_error_name(code))
}

/// What a build produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Built {
    pub frames: usize,
    pub size: u64,
    pub base_sha256: Sha256,
    pub base_size: u64,
    pub result_sha256: Sha256,
    pub result_size: u64,
}

/// Builds the delta that rebuilds `new` from `base` at zstd `level` (19 is a good default:
/// building happens once per release, applying on every device). Both files are read whole:
/// this runs where releases are signed, not on a device.
pub fn build(base: &Path, new: &Path, out: &Path, level: i32) -> Result<Built, DeltaError> {
    let base_bytes = std::fs::read(base).map_err(io_at(base))?;
    let new_bytes = std::fs::read(new).map_err(io_at(new))?;
    let mut file = File::create(out).map_err(io_at(out))?;
    let built = encode(&base_bytes, &new_bytes, level, &mut file).map_err(|e| match e {
        DeltaError::Io { source, .. } => io_at(out)(source),
        other => other,
    })?;
    file.sync_all().map_err(io_at(out))?;
    Ok(built)
}

/// Writes the delta from `base` to `new` into `out`.
pub fn encode(
    base: &[u8],
    new: &[u8],
    level: i32,
    out: &mut impl Write,
) -> Result<Built, DeltaError> {
    let io = |source| DeltaError::Io {
        path: PathBuf::from("(delta)"),
        source,
    };
    let base_sha256 = Sha256::of(base);
    let result_sha256 = Sha256::of(new);
    out.write_all(MAGIC).map_err(io)?;
    out.write_all(&(base.len() as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(base_sha256.as_bytes()).map_err(io)?;
    out.write_all(&(new.len() as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(result_sha256.as_bytes()).map_err(io)?;
    let index = Anchors::of(base);
    let mut written = 8 + 8 + 32 + 8 + 32;
    let mut frames = 0;
    let mut frame = vec![0u8; max_frame()];
    for (i, chunk) in new.chunks(CHUNK).enumerate() {
        let start = i * CHUNK;
        let (offset, len) = window(&index, base, new, start, chunk.len());
        let reference = &base[offset..offset + len];
        let mut cctx = CCtx::try_create().ok_or(DeltaError::Zstd("out of memory"))?;
        let window_log = log2_ceil(len + chunk.len()).max(10);
        for p in [
            CParameter::CompressionLevel(level),
            CParameter::WindowLog(window_log),
            CParameter::EnableLongDistanceMatching(true),
            CParameter::ChecksumFlag(true),
        ] {
            cctx.set_parameter(p).map_err(zstd_err)?;
        }
        cctx.ref_prefix(reference).map_err(zstd_err)?;
        let n = cctx.compress2(&mut frame[..], chunk).map_err(zstd_err)?;
        out.write_all(&(offset as u64).to_le_bytes()).map_err(io)?;
        out.write_all(&(len as u32).to_le_bytes()).map_err(io)?;
        out.write_all(&(chunk.len() as u32).to_le_bytes())
            .map_err(io)?;
        out.write_all(&(n as u32).to_le_bytes()).map_err(io)?;
        out.write_all(&frame[..n]).map_err(io)?;
        written += 8 + 4 + 4 + 4 + n;
        frames += 1;
    }
    out.flush().map_err(io)?;
    Ok(Built {
        frames,
        size: written as u64,
        base_sha256,
        base_size: base.len() as u64,
        result_sha256,
        result_size: new.len() as u64,
    })
}

fn log2_ceil(n: usize) -> u32 {
    usize::BITS - n.saturating_sub(1).leading_zeros()
}

/// The base window for the chunk of `new` at `start`: centred on where its anchors are found in
/// the base (the median shift), else at the same relative place.
fn window(index: &Anchors, base: &[u8], new: &[u8], start: usize, len: usize) -> (usize, usize) {
    let mut shifts: Vec<i64> = Vec::new();
    let from = start.saturating_sub(ANCHOR_WINDOW - 1);
    Anchors::each(&new[from..start + len], |end| {
        let at = from + end;
        if let Some(&b) = index.0.get(&key(&new[at - ANCHOR_WINDOW..at])) {
            shifts.push(b as i64 - at as i64);
        }
    });
    let expected = if shifts.is_empty() {
        (start as u128 * base.len() as u128 / new.len().max(1) as u128) as i64
    } else {
        shifts.sort_unstable();
        start as i64 + shifts[shifts.len() / 2]
    };
    let total = (len + 2 * MARGIN).min(base.len());
    let latest = (base.len() - total) as i64;
    let offset = (expected - MARGIN as i64).clamp(0, latest) as usize;
    (offset, total)
}

/// The base's anchors: the end position of each anchor, by the hash of its 32 bytes (the first
/// occurrence of each).
struct Anchors(HashMap<u64, usize>);

impl Anchors {
    fn of(base: &[u8]) -> Self {
        let mut map = HashMap::with_capacity(base.len() >> ANCHOR_BITS);
        Self::each(base, |end| {
            map.entry(key(&base[end - ANCHOR_WINDOW..end]))
                .or_insert(end);
        });
        Self(map)
    }

    /// Calls `f` with the end of every anchor of `data` (a buzhash over 32 bytes whose low
    /// bits are zero): content-defined, so the same bytes anchor wherever they moved.
    fn each(data: &[u8], mut f: impl FnMut(usize)) {
        if data.len() < ANCHOR_WINDOW {
            return;
        }
        let mask = (1u32 << ANCHOR_BITS) - 1;
        let mut h = 0u32;
        for (i, &b) in data.iter().enumerate() {
            h = h.rotate_left(1) ^ GEAR[b as usize];
            if i >= ANCHOR_WINDOW {
                h ^= GEAR[data[i - ANCHOR_WINDOW] as usize].rotate_left(ANCHOR_WINDOW as u32);
            }
            if i + 1 >= ANCHOR_WINDOW && h & mask == 0 {
                f(i + 1);
            }
        }
    }
}

/// A 64-bit hash of an anchor's 32 bytes (not cryptographic: it only says where to look).
fn key(bytes: &[u8]) -> u64 {
    bytes.chunks(8).fold(0xcbf2_9ce4_8422_2325u64, |h, w| {
        let mut b = [0u8; 8];
        b[..w.len()].copy_from_slice(w);
        (h ^ u64::from_le_bytes(b))
            .wrapping_mul(0x0100_0000_01b3)
            .rotate_left(29)
    })
}

/// A fixed table of pseudo-random words for the rolling hash (splitmix64 of the byte).
const GEAR: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        t[i] = z as u32;
        i += 1;
    }
    t
};

/// The header of a delta file: what it applies to and what it rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub base_size: u64,
    pub base_sha256: Sha256,
    pub result_size: u64,
    pub result_sha256: Sha256,
}

fn read_array<const N: usize>(r: &mut impl Read, what: &str) -> Result<[u8; N], DeltaError> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)
        .map_err(|e| DeltaError::Malformed(format!("{what}: {e}")))?;
    Ok(b)
}

fn read_header(r: &mut impl Read) -> Result<Header, DeltaError> {
    if &read_array::<8>(r, "magic")? != MAGIC {
        return Err(DeltaError::Malformed("no ONSHIDL1 magic".into()));
    }
    Ok(Header {
        base_size: u64::from_le_bytes(read_array(r, "base size")?),
        base_sha256: Sha256::from_bytes(read_array(r, "base digest")?),
        result_size: u64::from_le_bytes(read_array(r, "result size")?),
        result_sha256: Sha256::from_bytes(read_array(r, "result digest")?),
    })
}

/// Reads the header of a delta file (`onshi release sign --delta` lists what it names).
pub fn read_header_of(path: &Path) -> Result<Header, DeltaError> {
    read_header(&mut File::open(path).map_err(io_at(path))?)
}

/// What applying needs to know from the signed manifest.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    pub base_sha256: Sha256,
    pub base_size: u64,
    pub result_sha256: Sha256,
    pub result_size: u64,
}

/// Streams the SHA-256 of a file (one 1 MiB buffer).
pub fn hash_file(path: &Path) -> Result<(Sha256, u64), DeltaError> {
    let mut file = File::open(path).map_err(io_at(path))?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_at(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((Sha256::from_bytes(hasher.finalize().into()), size))
}

/// Rebuilds the package from `base` and `delta` into `out` (created afresh, synced), checking
/// the base's hash and length first and the result's after, against `expect` (the signed
/// manifest's, never the delta's own header). On any error `out` is removed. Memory: one
/// reference window, one chunk and one frame (at most [`MAX_REFERENCE`] + [`CHUNK`] + a frame).
pub fn apply(base: &Path, delta: &Path, out: &Path, expect: &Expect) -> Result<(), DeltaError> {
    let result = apply_inner(base, delta, out, expect);
    if result.is_err() {
        let _ = std::fs::remove_file(out);
    }
    result
}

fn apply_inner(base: &Path, delta: &Path, out: &Path, expect: &Expect) -> Result<(), DeltaError> {
    let (base_sha, base_size) = hash_file(base)?;
    if base_sha != expect.base_sha256 || base_size != expect.base_size {
        return Err(DeltaError::WrongBase(format!(
            "the installed package is {base_sha} ({base_size} bytes), the delta needs {} ({} bytes)",
            expect.base_sha256, expect.base_size
        )));
    }
    let mut input = BufReader::with_capacity(1 << 16, File::open(delta).map_err(io_at(delta))?);
    let header = read_header(&mut input)?;
    let named = Header {
        base_size: expect.base_size,
        base_sha256: expect.base_sha256,
        result_size: expect.result_size,
        result_sha256: expect.result_sha256,
    };
    if header != named {
        return Err(DeltaError::Malformed(
            "its header names another base or result than the signed manifest".into(),
        ));
    }
    let mut base_file = File::open(base).map_err(io_at(base))?;
    let mut output = File::create(out).map_err(io_at(out))?;
    let mut hasher = Hasher::new();
    let mut done = 0u64;
    let mut reference: Vec<u8> = Vec::new();
    let mut chunk: Vec<u8> = Vec::new();
    let mut frame: Vec<u8> = Vec::new();
    let limit = max_frame();
    while done < expect.result_size {
        let offset = u64::from_le_bytes(read_array(&mut input, "frame base offset")?);
        let ref_len = u32::from_le_bytes(read_array(&mut input, "frame base length")?) as usize;
        let out_len = u32::from_le_bytes(read_array(&mut input, "frame length")?) as usize;
        let frame_len = u32::from_le_bytes(read_array(&mut input, "frame size")?) as usize;
        let in_base = offset
            .checked_add(ref_len as u64)
            .is_some_and(|end| end <= base_size);
        if ref_len > MAX_REFERENCE
            || out_len == 0
            || out_len > CHUNK
            || frame_len > limit
            || !in_base
            || done + out_len as u64 > expect.result_size
        {
            return Err(DeltaError::Malformed(format!(
                "frame at {done}: window {offset}+{ref_len}, {out_len} bytes from {frame_len} out of bounds"
            )));
        }
        reference.resize(ref_len, 0);
        base_file
            .seek(SeekFrom::Start(offset))
            .map_err(io_at(base))?;
        base_file.read_exact(&mut reference).map_err(io_at(base))?;
        frame.resize(frame_len, 0);
        input
            .read_exact(&mut frame)
            .map_err(|e| DeltaError::Malformed(format!("frame at {done}: {e}")))?;
        chunk.clear();
        chunk.reserve_exact(out_len);
        let mut dctx = DCtx::try_create().ok_or(DeltaError::Zstd("out of memory"))?;
        dctx.set_parameter(DParameter::WindowLogMax(log2_ceil(MAX_REFERENCE + CHUNK)))
            .map_err(zstd_err)?;
        dctx.ref_prefix(&reference).map_err(zstd_err)?;
        let n = dctx.decompress(&mut chunk, &frame).map_err(zstd_err)?;
        drop(dctx);
        if n != out_len {
            return Err(DeltaError::Malformed(format!(
                "frame at {done} rebuilt {n} bytes, not {out_len}"
            )));
        }
        output.write_all(&chunk).map_err(io_at(out))?;
        hasher.update(&chunk);
        done += n as u64;
    }
    if input.read(&mut [0u8; 1]).map_err(io_at(delta))? != 0 {
        return Err(DeltaError::Malformed("bytes after the last frame".into()));
    }
    output.sync_all().map_err(io_at(out))?;
    let got = Sha256::from_bytes(hasher.finalize().into());
    if got != expect.result_sha256 || done != expect.result_size {
        return Err(DeltaError::WrongResult {
            expected: expect.result_sha256,
            expected_size: expect.result_size,
            got,
            got_size: done,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes that look like a program: repeated records with small variations.
    fn program(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn files(base: &[u8], new: &[u8]) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, n, d) = (
            dir.path().join("base"),
            dir.path().join("new"),
            dir.path().join("delta"),
        );
        std::fs::write(&b, base).expect("write");
        std::fs::write(&n, new).expect("write");
        (dir, b, n, d)
    }

    fn expect_of(base: &[u8], new: &[u8]) -> Expect {
        Expect {
            base_sha256: Sha256::of(base),
            base_size: base.len() as u64,
            result_sha256: Sha256::of(new),
            result_size: new.len() as u64,
        }
    }

    /// A new build: the old one with 1 MiB inserted near the front (everything after it moves)
    /// and a few bytes patched here and there, over more than two chunks.
    fn pair() -> (Vec<u8>, Vec<u8>) {
        let base = program(7, 11 << 20);
        let mut new = base.clone();
        new.splice(1 << 20..1 << 20, program(9, 1 << 20));
        for at in (0..new.len()).step_by(700_001) {
            new[at] ^= 0x5a;
        }
        (base, new)
    }

    #[test]
    fn a_delta_rebuilds_the_new_package_exactly_and_is_small() {
        let (base, new) = pair();
        let (dir, b, n, d) = files(&base, &new);
        let built = build(&b, &n, &d, 3).expect("builds");
        assert_eq!(built.frames, 3);
        // The inserted megabyte is new; the rest is found in the base despite the shift.
        assert!(built.size < (3 << 19), "delta of {} bytes", built.size);
        let out = dir.path().join("out");
        apply(&b, &d, &out, &expect_of(&base, &new)).expect("applies");
        assert_eq!(std::fs::read(&out).expect("read"), new);
    }

    #[test]
    fn another_base_a_damaged_delta_or_a_wrong_result_is_refused_and_leaves_nothing() {
        let (base, new) = pair();
        let (dir, b, n, d) = files(&base, &new);
        build(&b, &n, &d, 3).expect("builds");
        let out = dir.path().join("out");
        // The base on the device was changed.
        let mut tampered = base.clone();
        tampered[5] ^= 1;
        let other = dir.path().join("other");
        std::fs::write(&other, &tampered).expect("write");
        let e = apply(&other, &d, &out, &expect_of(&base, &new)).expect_err("refused");
        assert!(matches!(e, DeltaError::WrongBase(_)), "{e}");
        assert!(!out.exists());
        // A byte of a frame flipped: zstd's checksum or the result's hash catches it.
        let mut delta = std::fs::read(&d).expect("read");
        let at = delta.len() / 2;
        delta[at] ^= 0xff;
        std::fs::write(&d, &delta).expect("write");
        assert!(apply(&b, &d, &out, &expect_of(&base, &new)).is_err());
        assert!(!out.exists());
        // Truncated.
        std::fs::write(&d, &delta[..100]).expect("write");
        let e = apply(&b, &d, &out, &expect_of(&base, &new)).expect_err("refused");
        assert!(matches!(e, DeltaError::Malformed(_)), "{e}");
        // A manifest naming another result than the delta's header.
        build(&b, &n, &d, 3).expect("builds");
        let mut wrong = expect_of(&base, &new);
        wrong.result_sha256 = Sha256::of(b"something else");
        let e = apply(&b, &d, &out, &wrong).expect_err("refused");
        assert!(matches!(e, DeltaError::Malformed(_)), "{e}");
        assert!(!out.exists());
    }

    #[test]
    fn a_frame_asking_for_more_memory_than_the_budget_is_refused_before_allocating() {
        let (base, new) = pair();
        let (dir, b, n, d) = files(&base, &new);
        build(&b, &n, &d, 3).expect("builds");
        let mut delta = std::fs::read(&d).expect("read");
        // The first frame's reference length, just after the 88-byte header and its offset.
        delta[96..100].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&d, &delta).expect("write");
        let out = dir.path().join("out");
        let e = apply(&b, &d, &out, &expect_of(&base, &new)).expect_err("refused");
        assert!(matches!(e, DeltaError::Malformed(_)), "{e}");
    }
}
