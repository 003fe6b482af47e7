//! Memory pressure levels from resident-set samples, with hysteresis.
//!
//! The caller samples the process's resident bytes a few times a second (see
//! [`crate::limit::resident_bytes`]) and feeds each sample with the effective
//! limit to [`PressureMonitor::observe`]. The monitor reads no clock and logs
//! nothing: it returns a [`Transition`] when the level changes, and the caller
//! acts on the new level's [`Policy`].
//!
//! | level | resident / limit | entered at |
//! |---|---|---|
//! | None | below 40 % | — |
//! | Low | 40–60 % | 40 % |
//! | Medium | 60–80 % | 60 % |
//! | High | 80–90 % | 80 % |
//! | Critical | 90 % and above | 90 % |
//!
//! A level is entered as soon as a sample reaches its threshold, but left
//! downwards only when a sample falls a margin (5 points) below it, so that
//! samples near a threshold do not flip the level back and forth.
//!
//! ```
//! use interactsh_core::pressure::{Level, PressureMonitor};
//!
//! let mut monitor = PressureMonitor::new();
//! let limit = 1000;
//! let up = monitor.observe(850, limit).expect("85 % enters High");
//! assert_eq!((up.from, up.to), (Level::None, Level::High));
//! assert_eq!(monitor.observe(780, limit), None); // 78 % is within the margin of High
//! assert_eq!(monitor.bytes_to_free(780, limit), 80); // down to 70 %
//! assert_eq!(monitor.observe(740, limit).map(|down| down.to), Some(Level::Medium));
//! ```

/// A memory pressure level, ordered from no pressure to critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Below the Low threshold.
    None,
    /// From 40 %: release free memory.
    Low,
    /// From 60 %: collect garbage more often and expire idle sessions early.
    Medium,
    /// From 80 %: evict old interactions down to 70 % of the limit.
    High,
    /// From 90 %: reject new registrations and evict.
    Critical,
}

impl Level {
    /// Every level, from None to Critical.
    pub const ALL: [Level; 5] = [Level::None, Level::Low, Level::Medium, Level::High, Level::Critical];

    /// Returns the lowercase name used in metrics and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }

    /// Returns what the server does at this level. Each level keeps the
    /// actions of the levels below it.
    pub const fn policy(self) -> Policy {
        let none = Policy {
            release_free_pages: false,
            expire_idle_early: false,
            gc_threshold_percent: 100,
            evict_to_percent: None,
            malloc_trim: false,
            reject_registrations: false,
            shrink_capture_caps: false,
            gc_period_seconds: 300,
        };
        match self {
            Level::None => none,
            Level::Low => Policy {
                release_free_pages: true,
                ..none
            },
            Level::Medium => Policy {
                release_free_pages: true,
                expire_idle_early: true,
                gc_threshold_percent: 50,
                ..none
            },
            Level::High => Policy {
                release_free_pages: true,
                expire_idle_early: true,
                gc_threshold_percent: 25,
                evict_to_percent: Some(EVICTION_TARGET_PERCENT),
                malloc_trim: true,
                ..none
            },
            Level::Critical => Policy {
                release_free_pages: true,
                expire_idle_early: true,
                gc_threshold_percent: 25,
                evict_to_percent: Some(EVICTION_TARGET_PERCENT),
                malloc_trim: true,
                reject_registrations: true,
                shrink_capture_caps: true,
                gc_period_seconds: 30,
            },
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Percent of the limit that eviction at High and Critical brings resident memory down to.
pub const EVICTION_TARGET_PERCENT: u32 = 70;

/// The actions the server takes at a pressure level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Return free slab pages and spare table capacity to the allocator.
    pub release_free_pages: bool,
    /// Expire sessions that are not polled, before their TTL ends.
    pub expire_idle_early: bool,
    /// Python's generation-0 GC threshold, in percent of its configured value.
    pub gc_threshold_percent: u32,
    /// Evict the oldest interactions of idle sessions (or spill them to disk)
    /// until resident memory is at most this percent of the limit.
    pub evict_to_percent: Option<u32>,
    /// Ask the C allocator to return free memory to the system (`malloc_trim`).
    pub malloc_trim: bool,
    /// Reject new registrations with 503 and `Retry-After`.
    pub reject_registrations: bool,
    /// Capture less of each request than the configured capture limit.
    pub shrink_capture_caps: bool,
    /// Seconds between full garbage collections.
    pub gc_period_seconds: u32,
}

/// An error from [`Thresholds::validate`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PressureError {
    /// The thresholds do not ascend within (0, 1], or the margin does not fit between them.
    #[error(
        "pressure thresholds low={low} medium={medium} high={high} critical={critical} margin={margin} are invalid: \
         {reason}"
    )]
    InvalidThresholds {
        /// The Low threshold.
        low: f64,
        /// The Medium threshold.
        medium: f64,
        /// The High threshold.
        high: f64,
        /// The Critical threshold.
        critical: f64,
        /// The hysteresis margin.
        margin: f64,
        /// The problem and the values that work.
        reason: &'static str,
    },
}

/// Fractions of the limit at which each level is entered, and the hysteresis margin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Fraction that enters Low.
    pub low: f64,
    /// Fraction that enters Medium.
    pub medium: f64,
    /// Fraction that enters High.
    pub high: f64,
    /// Fraction that enters Critical.
    pub critical: f64,
    /// How far below a level's threshold a sample must fall to leave the level.
    pub margin: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            low: 0.40,
            medium: 0.60,
            high: 0.80,
            critical: 0.90,
            margin: 0.05,
        }
    }
}

impl Thresholds {
    /// Checks that the thresholds ascend within (0, 1] and that the margin is
    /// at least 0 and smaller than the Low threshold and every gap between thresholds.
    pub fn validate(&self) -> Result<(), PressureError> {
        let entries = [self.low, self.medium, self.high, self.critical];
        let reason = if entries.iter().chain([&self.margin]).any(|value| !value.is_finite()) {
            Some("every value must be a finite number")
        } else if !(self.low > 0.0 && self.critical <= 1.0) {
            Some("thresholds must lie in (0, 1]")
        } else if entries.windows(2).any(|pair| pair[0] >= pair[1]) {
            Some("thresholds must ascend from low to critical")
        } else if self.margin < 0.0 {
            Some("the margin must not be negative")
        } else if self.margin >= self.low || entries.windows(2).any(|pair| self.margin >= pair[1] - pair[0]) {
            Some("the margin must be smaller than the low threshold and every gap between thresholds")
        } else {
            None
        };
        match reason {
            None => Ok(()),
            Some(reason) => Err(PressureError::InvalidThresholds {
                low: self.low,
                medium: self.medium,
                high: self.high,
                critical: self.critical,
                margin: self.margin,
                reason,
            }),
        }
    }

    /// Returns the fraction at which `level` is entered; 0 for None.
    pub fn entry(&self, level: Level) -> f64 {
        match level {
            Level::None => 0.0,
            Level::Low => self.low,
            Level::Medium => self.medium,
            Level::High => self.high,
            Level::Critical => self.critical,
        }
    }

    /// Returns the level of `ratio` without hysteresis: the highest level whose threshold it reaches.
    pub fn level_for(&self, ratio: f64) -> Level {
        Level::ALL
            .into_iter()
            .rev()
            .find(|&level| ratio >= self.entry(level))
            .unwrap_or(Level::None)
    }
}

/// A change of level, returned by [`PressureMonitor::observe`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// The level before the sample.
    pub from: Level,
    /// The level after the sample.
    pub to: Level,
    /// Resident bytes divided by the limit.
    pub ratio: f64,
    /// Resident bytes of the sample.
    pub rss: u64,
    /// The limit of the sample in bytes.
    pub limit: u64,
}

/// Counters of a monitor, from [`PressureMonitor::stats`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressureStats {
    /// The current level.
    pub level: Level,
    /// Samples observed.
    pub samples: u64,
    /// Samples that left the monitor at each level, indexed as [`Level::ALL`].
    pub samples_at: [u64; 5],
    /// Transitions into each level, indexed as [`Level::ALL`].
    pub entered: [u64; 5],
    /// Ratio of the latest sample, 0 before the first.
    pub last_ratio: f64,
    /// Highest ratio observed.
    pub peak_ratio: f64,
}

/// Tracks the pressure level across samples.
#[derive(Debug, Clone)]
pub struct PressureMonitor {
    thresholds: Thresholds,
    level: Level,
    samples: u64,
    samples_at: [u64; 5],
    entered: [u64; 5],
    last_ratio: f64,
    peak_ratio: f64,
}

impl Default for PressureMonitor {
    fn default() -> Self {
        Self::new()
    }
}

impl PressureMonitor {
    /// Creates a monitor at level None with the default thresholds (40/60/80/90 %, 5-point margin).
    pub fn new() -> Self {
        Self::with_valid_thresholds(Thresholds::default())
    }

    /// Creates a monitor at level None with `thresholds`, after checking them.
    pub fn with_thresholds(thresholds: Thresholds) -> Result<Self, PressureError> {
        thresholds.validate()?;
        Ok(Self::with_valid_thresholds(thresholds))
    }

    fn with_valid_thresholds(thresholds: Thresholds) -> Self {
        Self {
            thresholds,
            level: Level::None,
            samples: 0,
            samples_at: [0; 5],
            entered: [0; 5],
            last_ratio: 0.0,
            peak_ratio: 0.0,
        }
    }

    /// Returns the current level.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Returns the thresholds in use.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// Records a sample of `rss` resident bytes against `limit` bytes and
    /// returns the transition when the level changes.
    ///
    /// The level rises at once to the highest level whose threshold the ratio
    /// reaches. It falls only while the ratio is more than the margin below the
    /// current level's threshold, possibly several levels in one sample. A limit
    /// of 0 counts as a ratio of infinity, which is Critical.
    pub fn observe(&mut self, rss: u64, limit: u64) -> Option<Transition> {
        let ratio = if limit == 0 {
            f64::INFINITY
        } else {
            rss as f64 / limit as f64
        };
        let from = self.level;
        let to = self.next_level(ratio);
        self.level = to;
        self.samples += 1;
        self.samples_at[to.index()] += 1;
        self.last_ratio = ratio;
        self.peak_ratio = self.peak_ratio.max(ratio);
        if to == from {
            return None;
        }
        self.entered[to.index()] += 1;
        Some(Transition {
            from,
            to,
            ratio,
            rss,
            limit,
        })
    }

    fn next_level(&self, ratio: f64) -> Level {
        let reached = self.thresholds.level_for(ratio);
        if reached >= self.level {
            return reached;
        }
        let mut level = self.level;
        while level > reached && ratio < self.thresholds.entry(level) - self.thresholds.margin {
            level = Level::ALL[level.index() - 1];
        }
        level
    }

    /// Returns how many resident bytes the current level's policy requires freeing: the
    /// excess over [`eviction_target`] at High and Critical, else 0.
    pub fn bytes_to_free(&self, rss: u64, limit: u64) -> u64 {
        bytes_to_free(self.level, rss, limit)
    }

    /// Returns the counters.
    pub fn stats(&self) -> PressureStats {
        PressureStats {
            level: self.level,
            samples: self.samples,
            samples_at: self.samples_at,
            entered: self.entered,
            last_ratio: self.last_ratio,
            peak_ratio: self.peak_ratio,
        }
    }
}

/// Returns the resident bytes that eviction aims for: [`EVICTION_TARGET_PERCENT`] of `limit`.
pub fn eviction_target(limit: u64) -> u64 {
    percent_of(limit, EVICTION_TARGET_PERCENT)
}

/// Returns how many bytes `level`'s policy requires freeing when `rss` bytes are
/// resident under `limit`: the excess over its eviction target, or 0 when the
/// level evicts nothing.
pub fn bytes_to_free(level: Level, rss: u64, limit: u64) -> u64 {
    match level.policy().evict_to_percent {
        Some(percent) => rss.saturating_sub(percent_of(limit, percent)),
        None => 0,
    }
}

fn percent_of(bytes: u64, percent: u32) -> u64 {
    // The product fits in u128, and the quotient of a percent up to 100 fits in u64.
    (u128::from(bytes) * u128::from(percent) / 100) as u64
}

#[cfg(test)]
mod tests;
