//! OCR of screenshots with the `tesseract` command line, when it is installed. The image is
//! hostile input: it is written only to a private temp file with a random name (created with
//! `create_new`, mode 0600, removed afterwards whatever happens), the program name is a
//! constant, the run is killed after 30 seconds, and the text read back is capped.

use std::fs::OpenOptions;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const TESSERACT: &str = "tesseract";
const TIMEOUT: Duration = Duration::from_secs(30);
/// Text kept from the program's standard output; a screenshot's text is a few KiB.
const MAX_OUTPUT: u64 = 4 << 20;
/// Error text kept from standard error.
const MAX_STDERR: u64 = 16 << 10;
/// Images larger than this are not written to disk at all.
const MAX_IMAGE_BYTES: usize = 64 << 20;

/// OCRs an image with `tesseract <file> stdout -l chi_sim+eng`. None when tesseract is not
/// installed (the caller records "not extracted: OCR unavailable"); Some(Err) when it ran and
/// failed, timed out, or the image could not be staged.
pub fn ocr_image(bytes: &[u8]) -> Option<Result<String, String>> {
    ocr_with(TESSERACT, bytes)
}

/// [`ocr_image`] with another program: lets tests take the "not installed" path without
/// touching the process environment.
pub(crate) fn ocr_with(program: &str, bytes: &[u8]) -> Option<Result<String, String>> {
    ocr_run(program, bytes, TIMEOUT)
}

fn ocr_run(program: &str, bytes: &[u8], timeout: Duration) -> Option<Result<String, String>> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Some(Err(format!(
            "image of {} bytes over the {MAX_IMAGE_BYTES}-byte cap",
            bytes.len()
        )));
    }
    let image = match TempImage::create(bytes) {
        Ok(t) => t,
        Err(e) => return Some(Err(format!("could not stage the image: {e}"))),
    };
    let mut cmd = Command::new(program);
    // `--psm 6`: a uniform block of text, which is what screenshots of sample tables are; the
    // default page segmentation splits their rows into fragments.
    cmd.arg(image.path())
        .args(["stdout", "-l", "chi_sim+eng", "--psm", "6"]);
    let result = run_capped(program, cmd, timeout);
    // Removed only after the program has exited or been killed.
    drop(image);
    result
}

/// Runs `cmd` with its output captured and capped and a deadline; None when the program does
/// not exist.
fn run_capped(
    program: &str,
    mut cmd: Command,
    timeout: Duration,
) -> Option<Result<String, String>> {
    let spawned = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(format!("could not start {program}: {e}"))),
    };
    let out = child.stdout.take().map(|r| read_capped(r, MAX_OUTPUT));
    let err = child.stderr.take().map(|r| read_capped(r, MAX_STDERR));
    let status = wait_with_deadline(&mut child, timeout);
    // The reader threads end when the pipes close; give them a moment, never block forever.
    let stdout = out.and_then(|h| join_soon(h, Duration::from_secs(2)));
    let stderr = err.and_then(|h| join_soon(h, Duration::from_secs(2)));
    Some(match status {
        Ok(s) if s.success() => {
            let (text, over) = stdout.unwrap_or_default();
            let mut text = String::from_utf8_lossy(&text).into_owned();
            if over {
                text.push_str("\n[OCR output truncated]");
            }
            Ok(text)
        }
        Ok(s) => {
            let (msg, _) = stderr.unwrap_or_default();
            let msg = String::from_utf8_lossy(&msg);
            let (msg, _) = super::normalise::cap_str(msg.trim(), 300);
            Err(format!("{program} failed ({s}): {msg}"))
        }
        Err(e) => Err(e),
    })
}

/// Waits for the child until `timeout`, then kills it.
fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Result<ExitStatus, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Ok(s),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("OCR timed out after {} s", timeout.as_secs()));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("OCR wait failed: {e}"));
            }
        }
    }
}

/// Reads up to `cap` bytes on a thread, then keeps draining (so the child never blocks on a full
/// pipe) and reports whether anything was dropped.
fn read_capped<R: Read + Send + 'static>(mut r: R, cap: u64) -> JoinHandle<(Vec<u8>, bool)> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut r).take(cap).read_to_end(&mut buf);
        let over = io::copy(&mut r, &mut io::sink()).is_ok_and(|n| n > 0);
        (buf, over)
    })
}

fn join_soon<T>(h: JoinHandle<T>, wait: Duration) -> Option<T> {
    let deadline = Instant::now() + wait;
    while !h.is_finished() {
        if Instant::now() >= deadline {
            // A grandchild may still hold the pipe: leave the thread to finish on its own.
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
    h.join().ok()
}

/// A private temp file holding the image, removed on drop.
struct TempImage {
    path: PathBuf,
}

impl TempImage {
    fn create(bytes: &[u8]) -> io::Result<TempImage> {
        let dir = std::env::temp_dir();
        for _ in 0..16 {
            let path = dir.join(format!("leakwatch-ocr-{}.img", random_name()));
            let mut opts = OpenOptions::new();
            // create_new refuses an existing path, symlinks included: nobody can plant one.
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            match opts.open(&path) {
                Ok(mut f) => {
                    // The guard exists before the write, so a failed write still removes the file.
                    let guard = TempImage { path };
                    f.write_all(bytes)?;
                    f.flush()?;
                    return Ok(guard);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free temp file name after 16 tries",
        ))
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// 128 unpredictable bits as hex, from std's randomly keyed hasher (no extra dependency): the
/// keys come from the OS once per process and change with every `RandomState`.
fn random_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut a = std::collections::hash_map::RandomState::new().build_hasher();
    a.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    a.write_u32(std::process::id());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    a.write_u128(nanos);
    let x = a.finish();
    let mut b = std::collections::hash_map::RandomState::new().build_hasher();
    b.write_u64(x);
    format!("{x:016x}{:016x}", b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_means_unavailable() {
        assert_eq!(
            ocr_with("leakwatch-no-such-ocr-program-7f3a", b"\x89PNG\r\n\x1a\n"),
            None
        );
    }

    #[test]
    fn temp_file_is_private_and_removed() {
        // `echo` prints the arguments it was given, which shows the staged path.
        let out = match ocr_with("echo", b"image bytes") {
            Some(Ok(out)) => out,
            other => panic!("echo should run: {other:?}"),
        };
        let path = out.split_whitespace().next().unwrap_or_default();
        assert!(path.contains("leakwatch-ocr-"), "{out}");
        assert!(out.contains("stdout -l chi_sim+eng"), "{out}");
        assert!(Path::new(path).starts_with(std::env::temp_dir()));
        assert!(!Path::new(path).exists(), "temp file left behind: {path}");

        let t = TempImage::create(b"x").unwrap();
        let p = t.path().to_path_buf();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        drop(t);
        assert!(!p.exists());
        assert_ne!(random_name(), random_name());
    }

    /// A grey-scale PNG of `digits` drawn with a 5×7 bitmap font (stored deflate blocks).
    fn digits_png(digits: &str, scale: usize) -> Vec<u8> {
        const FONT: [[u8; 7]; 10] = [
            [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
            [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
            [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
            [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
            [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
            [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
            [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
            [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
            [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
            [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ];
        fn crc32(data: &[u8]) -> u32 {
            let mut c = 0xFFFF_FFFFu32;
            for &b in data {
                c ^= u32::from(b);
                for _ in 0..8 {
                    c = if c & 1 != 0 {
                        0xEDB8_8320 ^ (c >> 1)
                    } else {
                        c >> 1
                    };
                }
            }
            !c
        }
        let glyphs: Vec<usize> = digits.bytes().map(|b| usize::from(b - b'0')).collect();
        let margin = 20;
        let (w, h) = (
            margin * 2 + glyphs.len() * 6 * scale,
            margin * 2 + 7 * scale,
        );
        let mut raw = Vec::with_capacity((w + 1) * h);
        for y in 0..h {
            raw.push(0); // filter: none
            for x in 0..w {
                let inside =
                    (margin..margin + 7 * scale).contains(&y) && (margin..w - margin).contains(&x);
                let ink = inside && {
                    let (gy, cell) = ((y - margin) / scale, (x - margin) / (6 * scale));
                    let gx = ((x - margin) % (6 * scale)) / scale;
                    gx < 5 && FONT[glyphs[cell]][gy] & (0x10 >> gx) != 0
                };
                raw.push(if ink { 0 } else { 255 });
            }
        }
        let mut z = vec![0x78, 0x01];
        let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
        for (i, block) in blocks.iter().enumerate() {
            z.push(u8::from(i + 1 == blocks.len()));
            let len = block.len() as u16;
            z.extend_from_slice(&len.to_le_bytes());
            z.extend_from_slice(&(!len).to_le_bytes());
            z.extend_from_slice(block);
        }
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in &raw {
            a = (a + u32::from(byte)) % 65_521;
            b = (b + a) % 65_521;
        }
        z.extend_from_slice(&((b << 16) | a).to_be_bytes());
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8; 4], data: &[u8]| {
            png.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut body = kind.to_vec();
            body.extend_from_slice(data);
            png.extend_from_slice(&body);
            png.extend_from_slice(&crc32(&body).to_be_bytes());
        };
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&(w as u32).to_be_bytes());
        ihdr.extend_from_slice(&(h as u32).to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grey
        chunk(b"IHDR", &ihdr);
        chunk(b"IDAT", &z);
        chunk(b"IEND", &[]);
        png
    }

    /// Runs only where tesseract is installed (CI installs it): the real command line reads the
    /// staged file and returns text; garbage bytes are an error, not a panic or a hang.
    #[test]
    fn real_tesseract_when_installed() {
        let png = digits_png("13812345678", 6);
        match ocr_image(&png) {
            None => {} // not installed here: nothing to check
            Some(Ok(text)) => {
                let digits = text.chars().filter(char::is_ascii_digit).count();
                assert!(digits >= 6, "OCR read {text:?}");
                assert!(matches!(ocr_image(&[0u8; 64]), Some(Err(_))));
            }
            Some(Err(e)) => panic!("tesseract is installed but failed: {e}"),
        }
    }

    #[test]
    fn failures_and_timeouts_are_errors() {
        assert!(matches!(ocr_with("false", b"x"), Some(Err(_))));
        assert_eq!(ocr_with("true", b"x"), Some(Ok(String::new())));
        // A program that outlives the deadline is killed; one that floods its output does
        // not block on a full pipe, and its output stays capped.
        let started = Instant::now();
        let mut sleep = Command::new("sleep");
        sleep.arg("30");
        let r = run_capped("sleep", sleep, Duration::from_millis(300));
        assert!(
            matches!(&r, Some(Err(e)) if e.contains("timed out")),
            "{r:?}"
        );
        let r = run_capped("yes", Command::new("yes"), Duration::from_millis(300));
        assert!(
            matches!(&r, Some(Err(e)) if e.contains("timed out")),
            "{r:?}"
        );
        let mut head = Command::new("head");
        head.args(["-c", "5000000", "/dev/zero"]);
        match run_capped("head", head, TIMEOUT) {
            Some(Ok(text)) => {
                assert!(text.len() < MAX_OUTPUT as usize + 100);
                assert!(text.ends_with("[OCR output truncated]"));
            }
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(matches!(
            ocr_run("true", &vec![0u8; MAX_IMAGE_BYTES + 1], TIMEOUT),
            Some(Err(_))
        ));
    }
}
