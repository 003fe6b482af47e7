use super::*;

const LIMIT: u64 = 1000;

/// Feeds per-mille samples and returns the level after each.
fn levels_after(monitor: &mut PressureMonitor, samples: &[u64]) -> Vec<Level> {
    samples
        .iter()
        .map(|&rss| {
            monitor.observe(rss, LIMIT);
            monitor.level()
        })
        .collect()
}

#[test]
fn levels_enter_at_thresholds() {
    let cases = [
        (0, Level::None),
        (399, Level::None),
        (400, Level::Low),
        (599, Level::Low),
        (600, Level::Medium),
        (799, Level::Medium),
        (800, Level::High),
        (899, Level::High),
        (900, Level::Critical),
        (5000, Level::Critical),
    ];
    for (rss, expected) in cases {
        let mut monitor = PressureMonitor::new();
        monitor.observe(rss, LIMIT);
        assert_eq!(monitor.level(), expected, "rss {rss} of {LIMIT}");
    }
}

#[test]
fn rising_steps_skip_levels() {
    let mut monitor = PressureMonitor::new();
    let transition = monitor.observe(950, LIMIT).expect("95 % changes the level");
    assert_eq!(
        transition,
        Transition {
            from: Level::None,
            to: Level::Critical,
            ratio: 0.95,
            rss: 950,
            limit: LIMIT
        }
    );
}

#[test]
fn falling_needs_margin() {
    let mut monitor = PressureMonitor::new();
    let levels = levels_after(&mut monitor, &[650, 560, 550, 549, 360, 351, 349]);
    assert_eq!(
        levels,
        [
            Level::Medium,
            Level::Medium,
            Level::Medium,
            Level::Low,
            Level::Low,
            Level::Low,
            Level::None
        ]
    );
}

#[test]
fn falling_steps_skip_levels() {
    let mut monitor = PressureMonitor::new();
    monitor.observe(950, LIMIT);
    let transition = monitor.observe(100, LIMIT).expect("10 % changes the level");
    assert_eq!((transition.from, transition.to), (Level::Critical, Level::None));
    monitor.observe(950, LIMIT);
    // 62 % is below High's exit (75 %) and above Medium's (55 %).
    let transition = monitor.observe(620, LIMIT).expect("62 % changes the level");
    assert_eq!((transition.from, transition.to), (Level::Critical, Level::Medium));
}

#[test]
fn oscillation_near_threshold_is_damped() {
    let mut monitor = PressureMonitor::new();
    let transitions = [801, 790, 805, 760, 810, 799]
        .iter()
        .filter_map(|&rss| monitor.observe(rss, LIMIT))
        .count();
    assert_eq!(transitions, 1);
    assert_eq!(monitor.level(), Level::High);
}

#[test]
fn repeated_level_reports_nothing() {
    let mut monitor = PressureMonitor::new();
    assert!(monitor.observe(450, LIMIT).is_some());
    assert_eq!(monitor.observe(500, LIMIT), None);
    assert_eq!(monitor.observe(450, LIMIT), None);
}

#[test]
fn zero_limit_is_critical() {
    let mut monitor = PressureMonitor::new();
    let transition = monitor.observe(0, 0).expect("nothing fits in a zero limit");
    assert_eq!(transition.to, Level::Critical);
    assert!(transition.ratio.is_infinite());
}

#[test]
fn counters_track_samples_and_entries() {
    let mut monitor = PressureMonitor::new();
    for rss in [100, 450, 650, 450, 900, 100, 100] {
        monitor.observe(rss, LIMIT);
    }
    let stats = monitor.stats();
    assert_eq!(stats.level, Level::None);
    assert_eq!(stats.samples, 7);
    // 45 % after Medium falls to Low, entering Low a second time.
    assert_eq!(stats.samples_at, [3, 2, 1, 0, 1]);
    assert_eq!(stats.entered, [1, 2, 1, 0, 1]);
    assert_eq!(stats.last_ratio, 0.1);
    assert_eq!(stats.peak_ratio, 0.9);
}

#[test]
fn eviction_target_is_70_percent() {
    assert_eq!(eviction_target(1000), 700);
    assert_eq!(eviction_target(u64::MAX), (u128::from(u64::MAX) * 7 / 10) as u64);
}

#[test]
fn bytes_to_free_follow_policy() {
    assert_eq!(bytes_to_free(Level::None, 950, LIMIT), 0);
    assert_eq!(bytes_to_free(Level::Medium, 950, LIMIT), 0);
    assert_eq!(bytes_to_free(Level::High, 850, LIMIT), 150);
    assert_eq!(bytes_to_free(Level::Critical, 950, LIMIT), 250);
    assert_eq!(bytes_to_free(Level::High, 600, LIMIT), 0);
    let mut monitor = PressureMonitor::new();
    monitor.observe(920, LIMIT);
    assert_eq!(monitor.bytes_to_free(920, LIMIT), 220);
}

#[test]
fn policies_accumulate_upwards() {
    let policies = Level::ALL.map(Level::policy);
    for pair in policies.windows(2) {
        assert!(pair[1].release_free_pages >= pair[0].release_free_pages);
        assert!(pair[1].expire_idle_early >= pair[0].expire_idle_early);
        assert!(pair[1].gc_threshold_percent <= pair[0].gc_threshold_percent);
        assert!(pair[1].malloc_trim >= pair[0].malloc_trim);
        assert!(pair[1].reject_registrations >= pair[0].reject_registrations);
    }
    assert!(!Level::None.policy().release_free_pages);
    assert!(Level::Low.policy().release_free_pages);
    assert_eq!(Level::Medium.policy().gc_threshold_percent, 50);
    assert_eq!(Level::High.policy().gc_threshold_percent, 25);
    assert_eq!(Level::High.policy().evict_to_percent, Some(70));
    assert!(!Level::High.policy().reject_registrations);
    assert!(Level::Critical.policy().reject_registrations);
    assert!(Level::Critical.policy().shrink_capture_caps);
    assert_eq!(Level::None.policy().gc_period_seconds, 300);
    assert_eq!(Level::Critical.policy().gc_period_seconds, 30);
}

#[test]
fn level_names_are_lowercase() {
    let names = Level::ALL.map(Level::as_str);
    assert_eq!(names, ["none", "low", "medium", "high", "critical"]);
}

#[test]
fn custom_thresholds_apply() {
    let thresholds = Thresholds {
        low: 0.5,
        medium: 0.7,
        high: 0.85,
        critical: 0.95,
        margin: 0.02,
    };
    let mut monitor = PressureMonitor::with_thresholds(thresholds).expect("ascending thresholds are valid");
    assert_eq!(
        levels_after(&mut monitor, &[450, 500, 481, 479]),
        [Level::None, Level::Low, Level::Low, Level::None]
    );
    assert_eq!(monitor.thresholds(), thresholds);
}

#[test]
fn invalid_thresholds_are_rejected() {
    let valid = Thresholds::default();
    let cases = [
        (
            Thresholds { medium: 0.3, ..valid },
            "thresholds must ascend from low to critical",
        ),
        (Thresholds { low: 0.0, ..valid }, "thresholds must lie in (0, 1]"),
        (Thresholds { critical: 1.5, ..valid }, "thresholds must lie in (0, 1]"),
        (
            Thresholds {
                high: f64::NAN,
                ..valid
            },
            "every value must be a finite number",
        ),
        (Thresholds { margin: -0.01, ..valid }, "the margin must not be negative"),
        (
            Thresholds { margin: 0.15, ..valid },
            "the margin must be smaller than the low threshold and every gap between thresholds",
        ),
    ];
    for (thresholds, expected) in cases {
        let error = PressureMonitor::with_thresholds(thresholds).expect_err("invalid thresholds");
        let PressureError::InvalidThresholds { reason, .. } = &error;
        assert_eq!(*reason, expected, "{thresholds:?}");
    }
    let error = Thresholds { medium: 0.3, ..valid }
        .validate()
        .expect_err("descending thresholds");
    assert_eq!(
        error.to_string(),
        "pressure thresholds low=0.4 medium=0.3 high=0.8 critical=0.9 margin=0.05 are invalid: thresholds must \
         ascend from low to critical"
    );
}

#[test]
fn level_for_ignores_hysteresis() {
    let thresholds = Thresholds::default();
    assert_eq!(thresholds.level_for(0.39), Level::None);
    assert_eq!(thresholds.level_for(0.6), Level::Medium);
    assert_eq!(thresholds.level_for(f64::INFINITY), Level::Critical);
    assert_eq!(thresholds.level_for(f64::NAN), Level::None);
}
