//! The process's effective memory limit and its resident set size.
//!
//! The effective limit is the lowest of the configured budget, the memory
//! limit of the process's cgroup (and of every cgroup above it), and the
//! machine's physical memory. Every reader takes a `root` directory that
//! stands for `/`, so tests can build fake `/proc` and `/sys` trees.
//!
//! ```no_run
//! use interactsh_core::limit::{resident_bytes, MemoryLimits};
//!
//! let limits = MemoryLimits::detect(Some(1024 << 20)).expect("/proc and /sys are readable");
//! let rss = resident_bytes().expect("/proc/self/statm is readable");
//! println!("{rss} of {:?} bytes, bound by {:?}", limits.effective(), limits.source());
//! ```

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use crate::error::quote;

/// Limits at or above this many bytes mean "no limit". Cgroup v1 reports an
/// unset limit as the largest page count times the page size, which is
/// 9223372036854771712 with 4 KiB pages, just under 2^63.
pub const UNLIMITED_FLOOR: u64 = 1 << 62;

/// `AT_PAGESZ`, the auxiliary-vector entry that contains the page size.
const AT_PAGESZ: usize = 6;

/// An error from reading a memory figure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// A file exists but reading it failed.
    #[error("could not read {}: {source}", path.display())]
    Read {
        /// The file as opened, under the root directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A file has content that is not in the kernel's format.
    #[error("{} contains {}, which is not {expected}", path.display(), quote(content))]
    Malformed {
        /// The file as opened, under the root directory.
        path: PathBuf,
        /// The offending text, or a description of the offending bytes.
        content: String,
        /// The format the reader expected.
        expected: &'static str,
    },
    /// The auxiliary vector has no usable page size.
    #[error("{} has no AT_PAGESZ entry that is a power of two, so the page size is unknown", path.display())]
    NoPageSize {
        /// The auxiliary vector as opened, under the root directory.
        path: PathBuf,
    },
    /// A file that every Linux process has is missing.
    #[error("{} is missing: mount procfs at /proc to read memory figures", path.display())]
    Missing {
        /// The file as opened, under the root directory.
        path: PathBuf,
    },
}

/// The cgroup hierarchy that a limit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// The legacy hierarchy with its `memory` controller (`memory.limit_in_bytes`).
    V1,
    /// The unified hierarchy (`memory.max`).
    V2,
}

/// The tightest memory limit among the process's cgroup and its ancestors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLimit {
    /// The limit in bytes.
    pub bytes: u64,
    /// The file that sets it, under the root directory.
    pub file: PathBuf,
    /// The hierarchy of that file.
    pub version: CgroupVersion,
}

/// The bound that makes the effective limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSource {
    /// The configured budget (`-max-memory`).
    Configured,
    /// A cgroup memory limit.
    Cgroup,
    /// The machine's physical memory (`MemTotal`).
    Physical,
}

/// The bounds on the process's memory, as found at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLimits {
    /// The configured budget in bytes, or `None` for no budget.
    pub configured: Option<u64>,
    /// The cgroup limit, or `None` when no cgroup limits the process.
    pub cgroup: Option<CgroupLimit>,
    /// Physical memory in bytes, or `None` when `/proc/meminfo` is missing.
    pub physical: Option<u64>,
}

impl MemoryLimits {
    /// Reads the cgroup limit and physical memory of the running process and
    /// combines them with the `configured` budget.
    pub fn detect(configured: Option<u64>) -> Result<Self, LimitError> {
        Self::detect_at(Path::new("/"), configured)
    }

    /// Does what [`detect`](Self::detect) does with `root` standing for `/`.
    pub fn detect_at(root: &Path, configured: Option<u64>) -> Result<Self, LimitError> {
        Ok(Self {
            configured,
            cgroup: cgroup_limit(root)?,
            physical: physical_memory(root)?,
        })
    }

    /// Returns the lowest bound in bytes, or `None` when nothing bounds the process.
    pub fn effective(&self) -> Option<u64> {
        self.bounds().map(|(bytes, _)| bytes).min()
    }

    /// Returns which bound is the effective limit. On a tie the configured
    /// budget wins, then the cgroup.
    pub fn source(&self) -> Option<LimitSource> {
        let lowest = self.effective()?;
        self.bounds()
            .find(|&(bytes, _)| bytes == lowest)
            .map(|(_, source)| source)
    }

    fn bounds(&self) -> impl Iterator<Item = (u64, LimitSource)> {
        let cgroup = self.cgroup.as_ref().map(|limit| (limit.bytes, LimitSource::Cgroup));
        let configured = self.configured.map(|bytes| (bytes, LimitSource::Configured));
        let physical = self.physical.map(|bytes| (bytes, LimitSource::Physical));
        configured.into_iter().chain(cgroup).chain(physical)
    }
}

/// Reads a text file, or returns `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, LimitError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) if error.kind() == io::ErrorKind::InvalidData => Err(LimitError::Malformed {
            path: path.to_path_buf(),
            content: "bytes that are not UTF-8".to_owned(),
            expected: "text",
        }),
        Err(source) => Err(LimitError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Joins an absolute path under `root`.
fn under_root(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Returns the machine's physical memory from `MemTotal` in `/proc/meminfo`,
/// or `None` when the file is missing.
pub fn physical_memory(root: &Path) -> Result<Option<u64>, LimitError> {
    let path = under_root(root, Path::new("/proc/meminfo"));
    let Some(text) = read_optional(&path)? else {
        return Ok(None);
    };
    let malformed = |content: &str| LimitError::Malformed {
        path: path.clone(),
        content: content.to_owned(),
        expected: "a 'MemTotal: <number> kB' line",
    };
    let line = text
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .ok_or_else(|| malformed(&text))?;
    let mut fields = line.split_whitespace().skip(1);
    let kib = fields
        .next()
        .and_then(|number| number.parse::<u64>().ok())
        .ok_or_else(|| malformed(line))?;
    if fields.next() != Some("kB") {
        return Err(malformed(line));
    }
    Ok(Some(kib.saturating_mul(1024)))
}

/// Returns the system's page size in bytes, read once from the auxiliary vector.
pub fn page_size() -> Result<usize, LimitError> {
    static PAGE_SIZE: OnceLock<usize> = OnceLock::new();
    if let Some(&size) = PAGE_SIZE.get() {
        return Ok(size);
    }
    let size = page_size_at(Path::new("/"))?;
    Ok(*PAGE_SIZE.get_or_init(|| size))
}

/// Reads `AT_PAGESZ` from `/proc/self/auxv` under `root`: pairs of native-endian
/// words, key then value, ending with key 0.
pub fn page_size_at(root: &Path) -> Result<usize, LimitError> {
    let path = under_root(root, Path::new("/proc/self/auxv"));
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(LimitError::Missing { path }),
        Err(source) => return Err(LimitError::Read { path, source }),
    };
    const WORD: usize = size_of::<usize>();
    for pair in bytes.chunks_exact(2 * WORD) {
        let (key, value) = pair.split_at(WORD);
        let word = |bytes: &[u8]| {
            let mut array = [0; WORD];
            array.copy_from_slice(bytes);
            usize::from_ne_bytes(array)
        };
        match word(key) {
            0 => break,
            AT_PAGESZ if word(value).is_power_of_two() => return Ok(word(value)),
            _ => {}
        }
    }
    Err(LimitError::NoPageSize { path })
}

/// Returns the resident set size of this process in bytes, from `/proc/self/statm`.
pub fn resident_bytes() -> Result<u64, LimitError> {
    resident_bytes_at(Path::new("/"), page_size()?)
}

/// Does what [`resident_bytes`] does with `root` standing for `/` and the given page size.
pub fn resident_bytes_at(root: &Path, page_size: usize) -> Result<u64, LimitError> {
    let path = under_root(root, Path::new("/proc/self/statm"));
    let Some(text) = read_optional(&path)? else {
        return Err(LimitError::Missing { path });
    };
    let pages = text
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse::<u64>().ok())
        .ok_or_else(|| LimitError::Malformed {
            path: path.clone(),
            content: text.trim_end().to_owned(),
            expected: "numbers of pages, resident pages second",
        })?;
    Ok(pages.saturating_mul(page_size as u64))
}

/// Returns the tightest memory limit of the process's cgroup and its
/// ancestors, or `None` when no cgroup limits the process.
///
/// The process's cgroup comes from `/proc/self/cgroup`; where each hierarchy
/// is mounted comes from `/proc/self/mountinfo`, defaulting to
/// `/sys/fs/cgroup` (v2) and `/sys/fs/cgroup/memory` (v1). When a v1 hierarchy
/// has the memory controller it is the one that limits memory, even on hosts
/// that also mount v2.
pub fn cgroup_limit(root: &Path) -> Result<Option<CgroupLimit>, LimitError> {
    let Some(membership) = read_optional(&under_root(root, Path::new("/proc/self/cgroup")))? else {
        return Ok(None);
    };
    let (version, cgroup_path) = match parse_membership(&membership) {
        (Some(v1_path), _) => (CgroupVersion::V1, v1_path),
        (None, Some(v2_path)) => (CgroupVersion::V2, v2_path),
        (None, None) => return Ok(None),
    };
    let mounts = read_optional(&under_root(root, Path::new("/proc/self/mountinfo")))?.unwrap_or_default();
    let (mount_root, mount_point) = find_mount(&mounts, version).unwrap_or_else(|| match version {
        CgroupVersion::V1 => ("/".to_owned(), PathBuf::from("/sys/fs/cgroup/memory")),
        CgroupVersion::V2 => ("/".to_owned(), PathBuf::from("/sys/fs/cgroup")),
    });
    let file_name = match version {
        CgroupVersion::V1 => "memory.limit_in_bytes",
        CgroupVersion::V2 => "memory.max",
    };
    let mut tightest: Option<CgroupLimit> = None;
    for directory in ancestors(&mount_point, &mount_root, &cgroup_path) {
        let file = under_root(root, &directory.join(file_name));
        let Some(bytes) = read_limit_file(&file)? else {
            continue;
        };
        if tightest.as_ref().is_none_or(|limit| bytes < limit.bytes) {
            tightest = Some(CgroupLimit { bytes, file, version });
        }
    }
    Ok(tightest)
}

/// Reads one `memory.max` or `memory.limit_in_bytes` file: `None` when it is
/// missing or sets no limit.
fn read_limit_file(path: &Path) -> Result<Option<u64>, LimitError> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    let bytes = match text.trim() {
        "max" => return Ok(None),
        number => number.parse::<u64>().map_err(|_| LimitError::Malformed {
            path: path.to_path_buf(),
            content: text.trim_end().to_owned(),
            expected: "a number of bytes or 'max'",
        })?,
    };
    Ok((bytes < UNLIMITED_FLOOR).then_some(bytes))
}

/// Returns the cgroup paths of the v1 hierarchy with the memory controller and of the v2 hierarchy.
fn parse_membership(text: &str) -> (Option<String>, Option<String>) {
    let mut v1 = None;
    let mut v2 = None;
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path.to_owned());
        } else if controllers.split(',').any(|controller| controller == "memory") {
            v1 = Some(path.to_owned());
        }
    }
    (v1, v2)
}

/// Finds the mount of a hierarchy in `/proc/self/mountinfo` text and returns
/// the cgroup path it exposes and its mount point.
fn find_mount(mountinfo: &str, version: CgroupVersion) -> Option<(String, PathBuf)> {
    mountinfo.lines().find_map(|line| {
        // Fields: id, parent, major:minor, root, mount point, options, optional
        // fields, "-", filesystem type, source, super options.
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split(' ').collect();
        let mut tail = after.split(' ');
        let (filesystem, _source, options) = (tail.next()?, tail.next()?, tail.next().unwrap_or(""));
        let matches = match version {
            CgroupVersion::V2 => filesystem == "cgroup2",
            CgroupVersion::V1 => filesystem == "cgroup" && options.split(',').any(|option| option == "memory"),
        };
        (matches && fields.len() >= 5)
            .then(|| (unescape_mount_field(fields[3]), unescape_mount_field(fields[4]).into()))
    })
}

/// Decodes the octal escapes (`\040` for a space) that mountinfo uses in paths.
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escape = bytes
            .get(index + 1..index + 4)
            .filter(|digits| digits.iter().all(|digit| (b'0'..=b'7').contains(digit)));
        match (bytes[index], escape) {
            (b'\\', Some(digits)) => {
                let value = digits
                    .iter()
                    .fold(0u32, |value, digit| value * 8 + u32::from(digit - b'0'));
                decoded.push(u8::try_from(value).unwrap_or(b'?'));
                index += 4;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Lists the directories from the process's cgroup up to the mount point.
///
/// A cgroup path outside the mount's root (a cgroup namespace shows this as
/// `/..`), or one that climbs with `..`, yields only the mount point.
fn ancestors(mount_point: &Path, mount_root: &str, cgroup_path: &str) -> Vec<PathBuf> {
    let relative = Path::new(cgroup_path).strip_prefix(mount_root).ok().filter(|relative| {
        relative
            .components()
            .all(|component| matches!(component, Component::Normal(_) | Component::RootDir))
    });
    let mut directories = vec![mount_point.to_path_buf()];
    let Some(relative) = relative else {
        return directories;
    };
    let mut current = mount_point.to_path_buf();
    for component in relative.components() {
        if let Component::Normal(name) = component {
            current.push(name);
            directories.push(current.clone());
        }
    }
    directories.reverse();
    directories
}

// Miri's isolation forbids the file access that these tests need.
#[cfg(all(test, not(miri)))]
mod tests;
