use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::*;

const MIB: u64 = 1 << 20;

/// A directory that stands for `/`, with fake `/proc` and `/sys` files.
struct FakeRoot {
    directory: TempDir,
}

impl FakeRoot {
    fn new() -> Self {
        Self {
            directory: TempDir::new().expect("a temporary directory can be created"),
        }
    }

    fn write(&self, path: &str, content: impl AsRef<[u8]>) -> &Self {
        let full = self.full(path);
        fs::create_dir_all(full.parent().expect("a file has a parent")).expect("directories can be created");
        fs::write(full, content).expect("the file can be written");
        self
    }

    fn full(&self, path: &str) -> PathBuf {
        self.directory.path().join(path.trim_start_matches('/'))
    }

    fn path(&self) -> &Path {
        self.directory.path()
    }
}

const V2_MOUNTINFO: &str = "24 1 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw\n";

const V1_MOUNTINFO: &str = "\
30 24 0:26 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct
31 24 0:27 /docker/abc /sys/fs/cgroup/memory ro,nosuid,nodev master:9 - cgroup cgroup rw,memory
";

#[test]
fn v2_limit_of_own_cgroup() {
    let root = FakeRoot::new();
    root.write("/proc/self/cgroup", "0::/system.slice/app.service\n")
        .write("/proc/self/mountinfo", V2_MOUNTINFO)
        .write("/sys/fs/cgroup/system.slice/app.service/memory.max", "536870912\n")
        .write("/sys/fs/cgroup/system.slice/memory.max", "max\n");
    let limit = cgroup_limit(root.path())
        .expect("the tree is readable")
        .expect("a limit is set");
    assert_eq!(limit.bytes, 512 * MIB);
    assert_eq!(limit.version, CgroupVersion::V2);
    assert_eq!(
        limit.file,
        root.full("/sys/fs/cgroup/system.slice/app.service/memory.max")
    );
}

#[test]
fn v2_ancestor_limit_is_tighter() {
    let root = FakeRoot::new();
    root.write("/proc/self/cgroup", "0::/system.slice/app.service\n")
        .write("/sys/fs/cgroup/system.slice/app.service/memory.max", "max\n")
        .write("/sys/fs/cgroup/system.slice/memory.max", "268435456\n");
    let limit = cgroup_limit(root.path())
        .expect("the tree is readable")
        .expect("a limit is set");
    assert_eq!(limit.bytes, 256 * MIB);
    assert_eq!(limit.file, root.full("/sys/fs/cgroup/system.slice/memory.max"));
}

#[test]
fn v2_max_means_unlimited() {
    let root = FakeRoot::new();
    root.write("/proc/self/cgroup", "0::/user.slice\n")
        .write("/sys/fs/cgroup/user.slice/memory.max", "max\n");
    assert_eq!(cgroup_limit(root.path()).expect("the tree is readable"), None);
}

#[test]
fn v2_namespace_root_reads_mount_point() {
    let root = FakeRoot::new();
    root.write("/proc/self/cgroup", "0::/\n")
        .write("/sys/fs/cgroup/memory.max", "104857600\n");
    let limit = cgroup_limit(root.path())
        .expect("the tree is readable")
        .expect("a limit is set");
    assert_eq!(limit.bytes, 100 * MIB);
}

#[test]
fn v2_path_outside_namespace_reads_mount_point() {
    let root = FakeRoot::new();
    root.write("/proc/self/cgroup", "0::/../../escape\n")
        .write("/sys/fs/cgroup/memory.max", "104857600\n")
        .write("/escape/memory.max", "1\n");
    let limit = cgroup_limit(root.path())
        .expect("the tree is readable")
        .expect("a limit is set");
    assert_eq!(limit.bytes, 100 * MIB);
}

#[test]
fn v2_mount_point_from_mountinfo() {
    let root = FakeRoot::new();
    root.write("/proc/self/cgroup", "0::/jobs/one\n")
        .write(
            "/proc/self/mountinfo",
            "40 1 0:30 / /run/my\\040cgroups rw - cgroup2 none rw\n",
        )
        .write("/run/my cgroups/jobs/one/memory.max", "33554432\n");
    let limit = cgroup_limit(root.path())
        .expect("the tree is readable")
        .expect("a limit is set");
    assert_eq!(limit.bytes, 32 * MIB);
}

#[test]
fn v1_limit_through_mount_root() {
    let root = FakeRoot::new();
    root.write(
        "/proc/self/cgroup",
        "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/docker/abc\n",
    )
    .write("/proc/self/mountinfo", V1_MOUNTINFO)
    .write("/sys/fs/cgroup/memory/memory.limit_in_bytes", "268435456\n");
    let limit = cgroup_limit(root.path())
        .expect("the tree is readable")
        .expect("a limit is set");
    assert_eq!(limit.bytes, 256 * MIB);
    assert_eq!(limit.version, CgroupVersion::V1);
}

#[test]
fn v1_default_mount_walks_to_root() {
    let root = FakeRoot::new();
    root.write("/proc/self/cgroup", "4:memory:/docker/abc\n")
        .write("/sys/fs/cgroup/memory/memory.limit_in_bytes", "134217728\n");
    let limit = cgroup_limit(root.path())
        .expect("the tree is readable")
        .expect("a limit is set");
    assert_eq!(limit.bytes, 128 * MIB);
    assert_eq!(limit.file, root.full("/sys/fs/cgroup/memory/memory.limit_in_bytes"));
}

#[test]
fn v1_huge_value_means_unlimited() {
    let root = FakeRoot::new();
    root.write("/proc/self/cgroup", "4:memory:/\n")
        .write("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    assert_eq!(cgroup_limit(root.path()).expect("the tree is readable"), None);
}

#[test]
fn hybrid_host_uses_v1_memory() {
    let root = FakeRoot::new();
    root.write("/proc/self/cgroup", "0::/user.slice\n7:memory:/user.slice\n")
        .write("/sys/fs/cgroup/memory/user.slice/memory.limit_in_bytes", "67108864\n")
        .write("/sys/fs/cgroup/user.slice/memory.max", "1048576\n");
    let limit = cgroup_limit(root.path())
        .expect("the tree is readable")
        .expect("a limit is set");
    assert_eq!(limit.bytes, 64 * MIB);
    assert_eq!(limit.version, CgroupVersion::V1);
}

#[test]
fn missing_files_mean_unlimited() {
    let empty = FakeRoot::new();
    assert_eq!(cgroup_limit(empty.path()).expect("missing files are no error"), None);
    let without_limit = FakeRoot::new();
    without_limit.write("/proc/self/cgroup", "0::/a/b\n");
    assert_eq!(
        cgroup_limit(without_limit.path()).expect("missing files are no error"),
        None
    );
    let unknown = FakeRoot::new();
    unknown.write("/proc/self/cgroup", "3:cpu:/a\nnot a cgroup line\n");
    assert_eq!(
        cgroup_limit(unknown.path()).expect("no memory hierarchy is no error"),
        None
    );
}

#[test]
fn malformed_limit_is_an_error() {
    let root = FakeRoot::new();
    root.write("/proc/self/cgroup", "0::/\n")
        .write("/sys/fs/cgroup/memory.max", "lots\n");
    let error = cgroup_limit(root.path()).expect_err("'lots' is no byte count");
    let file = root.full("/sys/fs/cgroup/memory.max");
    assert!(matches!(&error, LimitError::Malformed { path, .. } if *path == file));
    assert_eq!(
        error.to_string(),
        format!(
            "{} contains 'lots', which is not a number of bytes or 'max'",
            file.display()
        )
    );
}

#[test]
fn unreadable_file_is_an_error() {
    let root = FakeRoot::new();
    root.write("/proc/self/cgroup", "0::/\n");
    fs::create_dir_all(root.full("/sys/fs/cgroup/memory.max")).expect("a directory can be created");
    let error = cgroup_limit(root.path()).expect_err("a directory cannot be read as a file");
    assert!(matches!(error, LimitError::Read { .. }), "{error:?}");
}

#[test]
fn physical_memory_from_meminfo() {
    let root = FakeRoot::new();
    root.write(
        "/proc/meminfo",
        "MemTotal:       16318412 kB\nMemFree:         1000 kB\n",
    );
    assert_eq!(
        physical_memory(root.path()).expect("meminfo is readable"),
        Some(16_318_412 * 1024)
    );
    assert_eq!(
        physical_memory(FakeRoot::new().path()).expect("a missing meminfo is no error"),
        None
    );
    let broken = FakeRoot::new();
    broken.write("/proc/meminfo", "MemTotal: many kB\n");
    let error = physical_memory(broken.path()).expect_err("'many' is no number");
    assert!(
        error
            .to_string()
            .contains("which is not a 'MemTotal: <number> kB' line"),
        "{error}"
    );
}

fn limits(configured: Option<u64>, cgroup: Option<u64>, physical: Option<u64>) -> MemoryLimits {
    let cgroup = cgroup.map(|bytes| CgroupLimit {
        bytes,
        file: PathBuf::from("/memory.max"),
        version: CgroupVersion::V2,
    });
    MemoryLimits {
        configured,
        cgroup,
        physical,
    }
}

#[test]
fn effective_is_lowest_bound() {
    let cases = [
        (
            limits(Some(1024), Some(512), Some(4096)),
            Some(512),
            Some(LimitSource::Cgroup),
        ),
        (
            limits(Some(1024), Some(2048), Some(4096)),
            Some(1024),
            Some(LimitSource::Configured),
        ),
        (
            limits(Some(8192), None, Some(4096)),
            Some(4096),
            Some(LimitSource::Physical),
        ),
        (limits(None, Some(100), None), Some(100), Some(LimitSource::Cgroup)),
        (
            limits(Some(100), Some(100), Some(100)),
            Some(100),
            Some(LimitSource::Configured),
        ),
        (limits(None, None, None), None, None),
    ];
    for (limits, effective, source) in cases {
        assert_eq!(limits.effective(), effective, "{limits:?}");
        assert_eq!(limits.source(), source, "{limits:?}");
    }
}

#[test]
fn detect_at_combines_sources() {
    let root = FakeRoot::new();
    root.write("/proc/self/cgroup", "0::/\n")
        .write("/sys/fs/cgroup/memory.max", "536870912\n")
        .write("/proc/meminfo", "MemTotal: 1048576 kB\n");
    let detected = MemoryLimits::detect_at(root.path(), Some(1024 * MIB)).expect("the tree is readable");
    assert_eq!(detected.configured, Some(1024 * MIB));
    assert_eq!(detected.physical, Some(1024 * MIB));
    assert_eq!(detected.effective(), Some(512 * MIB));
    assert_eq!(detected.source(), Some(LimitSource::Cgroup));
}

#[test]
fn statm_resident_pages_times_page_size() {
    let root = FakeRoot::new();
    root.write("/proc/self/statm", "5000 1200 300 10 0 800 0\n");
    assert_eq!(
        resident_bytes_at(root.path(), 4096).expect("statm is readable"),
        1200 * 4096
    );
    root.write("/proc/self/statm", "5000\n");
    let error = resident_bytes_at(root.path(), 4096).expect_err("no second field");
    assert!(error
        .to_string()
        .ends_with("contains '5000', which is not numbers of pages, resident pages second"));
    let missing = resident_bytes_at(FakeRoot::new().path(), 4096).expect_err("no statm");
    assert!(matches!(missing, LimitError::Missing { .. }));
    assert!(missing
        .to_string()
        .ends_with("is missing: mount procfs at /proc to read memory figures"));
}

/// Encodes auxiliary-vector entries as the kernel does: native-endian word pairs.
fn auxv(entries: &[(usize, usize)]) -> Vec<u8> {
    entries
        .iter()
        .flat_map(|&(key, value)| [key.to_ne_bytes(), value.to_ne_bytes()].concat())
        .collect()
}

#[test]
fn page_size_from_auxv() {
    let root = FakeRoot::new();
    root.write("/proc/self/auxv", auxv(&[(33, 0x7fff_0000), (6, 16384), (0, 0)]));
    assert_eq!(page_size_at(root.path()).expect("auxv has AT_PAGESZ"), 16384);
    root.write("/proc/self/auxv", auxv(&[(33, 1), (0, 0), (6, 4096)]));
    let error = page_size_at(root.path()).expect_err("AT_PAGESZ after the end marker");
    assert!(error
        .to_string()
        .ends_with("has no AT_PAGESZ entry that is a power of two, so the page size is unknown"));
    root.write("/proc/self/auxv", auxv(&[(6, 1000), (0, 0)]));
    let error = page_size_at(root.path()).expect_err("1000 is no power of two");
    assert!(matches!(error, LimitError::NoPageSize { .. }));
    let missing = page_size_at(FakeRoot::new().path()).expect_err("no auxv");
    assert!(matches!(missing, LimitError::Missing { .. }));
}

#[test]
fn this_process_has_figures() {
    let size = page_size().expect("this Linux process has an auxiliary vector");
    assert!(size.is_power_of_two(), "page size {size}");
    assert!(size >= 4096, "page size {size}");
    let resident = resident_bytes().expect("this Linux process has /proc/self/statm");
    assert!(resident > 0);
    let detected = MemoryLimits::detect(Some(1 << 40)).expect("this machine's cgroup files are readable");
    assert!(detected.physical.is_some());
    assert!(detected.effective().is_some_and(|bytes| bytes <= 1 << 40));
}
