use super::*;
use proptest::prelude::*;

fn rec(id: u64, x: i32) -> Record {
    Record {
        id,
        x,
        y: -x,
        z: 3,
        vx: 500,
        vy: -500,
        kind: 1,
        flags: 0,
        game: [0; GAME_FIELDS],
    }
}

fn round_trip(baseline: &[Record], wanted: &[Wanted], room: usize) -> Vec<Record> {
    let mut out = vec![0u8; room];
    let mut stored = Vec::new();
    let e = encode_delta(baseline, wanted, &mut out, &mut stored);
    let mut decoded = Vec::new();
    apply_delta(baseline, &out[..e.bytes], e.entries, &mut decoded).unwrap();
    assert_eq!(decoded, stored, "the client holds what the server stored");
    decoded
}

#[test]
fn delta_round_trips_updates_news_and_removals() {
    let baseline: Vec<Record> = (1..=10).map(|i| rec(i * 3, 100 * i as i32)).collect();
    let wanted: Vec<Wanted> = [3u64, 6, 9, 11, 15, 1 << 63]
        .iter()
        .map(|&id| Wanted {
            record: rec(id, id as i32 * 7),
            due: true,
            renew: false,
        })
        .collect();
    let got = round_trip(&baseline, &wanted, 1200);
    let ids: Vec<u64> = got.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![3, 6, 9, 11, 15, 1 << 63]);
    assert_eq!(got[0].x, 21);
}

#[test]
fn not_due_members_keep_their_baseline_value() {
    let baseline = vec![rec(1, 0), rec(2, 0)];
    let wanted = vec![
        Wanted {
            record: rec(1, 50),
            due: false,
            renew: false,
        },
        Wanted {
            record: rec(2, 50),
            due: true,
            renew: false,
        },
    ];
    let got = round_trip(&baseline, &wanted, 1200);
    assert_eq!(got[0].x, 0);
    assert_eq!(got[1].x, 50);
}

#[test]
fn a_new_member_not_due_is_not_introduced_yet() {
    let wanted = vec![
        Wanted {
            record: rec(1, 50),
            due: false,
            renew: false,
        },
        Wanted {
            record: rec(2, 50),
            due: true,
            renew: false,
        },
    ];
    let got = round_trip(&[], &wanted, 1200);
    assert_eq!(got, vec![rec(2, 50)]);
}

#[test]
fn game_fields_cost_nothing_unchanged_and_bad_game_masks_are_refused() {
    let baseline = vec![rec(1, 0)];
    let moved = Wanted {
        record: rec(1, 10),
        due: true,
        renew: false,
    };
    let mut out = [0u8; 64];
    let mut stored = Vec::new();
    let plain = encode_delta(&baseline, &[moved], &mut out, &mut stored);
    assert_eq!(plain.bytes, 4, "head, mask, x, y: no game mask");
    let mut hurt = moved;
    hurt.record.game[2] = -75;
    let with_game = encode_delta(&baseline, &[hurt], &mut out, &mut stored);
    assert_eq!(
        with_game.bytes,
        4 + 1 + 2,
        "plus the game mask and one field"
    );
    assert_eq!(out[1] & 0x80, 0x80);
    assert_eq!(out[2], 1 << 2);
    let mut decoded = Vec::new();
    apply_delta(&baseline, &out[..with_game.bytes], 1, &mut decoded).unwrap();
    assert_eq!(decoded, vec![hurt.record]);
    // A game mask naming nothing, or a field past the fourth, is not canonical.
    for bad_game in [0u8, 1 << GAME_FIELDS] {
        let mut bad = out;
        bad[2] = bad_game;
        assert_eq!(
            apply_delta(&baseline, &bad[..with_game.bytes], 1, &mut decoded),
            Err(DecodeError::Inconsistent)
        );
    }
}

#[test]
fn a_full_datagram_leaves_entries_out_and_says_so() {
    let baseline: Vec<Record> = (1..=100).map(|i| rec(i, 0)).collect();
    let wanted: Vec<Wanted> = (50..=200)
        .map(|i| Wanted {
            record: rec(i, 1000),
            due: true,
            renew: false,
        })
        .collect();
    let got = round_trip(&baseline, &wanted, 300);
    // The removals (1 byte each) fit; updates left out keep the baseline value; news
    // left out are not held.
    assert!(got.iter().all(|r| r.id >= 50));
    assert!(got.iter().any(|r| r.id <= 100 && r.x == 0));
    assert!(got.len() < 151);
}

/// Records a strategy can draw: ids sorted and unique, fields anywhere in their range.
fn records(max: usize) -> impl Strategy<Value = Vec<Record>> {
    prop::collection::btree_map(
        any::<u64>(),
        (
            (
                any::<i32>(),
                any::<i32>(),
                any::<i16>(),
                any::<i16>(),
                any::<i16>(),
                any::<u16>(),
                any::<u16>(),
            ),
            // Game fields: often all zero (a game without client fields), else
            // anything, some zero.
            prop_oneof![Just([0; GAME_FIELDS]), any::<[i32; GAME_FIELDS]>()],
            any::<u8>(),
        ),
        0..max,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(id, ((x, y, z, vx, vy, kind, flags), mut game, zeros))| {
                for (k, g) in game.iter_mut().enumerate() {
                    if zeros >> k & 1 == 1 {
                        *g = 0;
                    }
                }
                Record {
                    id,
                    x,
                    y,
                    z,
                    vx,
                    vy,
                    kind,
                    flags,
                    game,
                }
            })
            .collect()
    })
}

/// A baseline, a wanted list drawn partly from it (so updates, news and removals all
/// occur), and the encoded delta.
fn valid_delta() -> impl Strategy<Value = (Vec<Record>, Vec<u8>, u16, Vec<Record>)> {
    (records(40), records(40), any::<u64>()).prop_map(|(baseline, fresh, pick)| {
        let mut wanted: Vec<Wanted> = baseline
            .iter()
            .enumerate()
            .filter(|(i, _)| pick >> (i % 64) & 1 == 1)
            .map(|(i, r)| Wanted {
                record: Record {
                    x: r.x.wrapping_add(i as i32),
                    game: {
                        // Half the updates change one game field.
                        let mut g = r.game;
                        if i % 2 == 0 {
                            g[i % GAME_FIELDS] = g[i % GAME_FIELDS].wrapping_add(i as i32 + 1);
                        }
                        g
                    },
                    ..*r
                },
                due: i % 3 != 0,
                renew: false,
            })
            // Every fifth unchanged, and renewed (an entry all the same).
            .map(
                |w| match baseline.iter().position(|b| b.id == w.record.id) {
                    Some(i) if i % 5 == 0 => Wanted {
                        record: baseline[i],
                        due: true,
                        renew: true,
                    },
                    _ => w,
                },
            )
            .collect();
        for r in fresh {
            if !wanted.iter().any(|w| w.record.id == r.id) {
                wanted.push(Wanted {
                    record: r,
                    due: true,
                    renew: false,
                });
            }
        }
        wanted.sort_by_key(|w| w.record.id);
        let mut out = vec![0u8; 4096];
        let mut stored = Vec::new();
        let e = encode_delta(&baseline, &wanted, &mut out, &mut stored);
        out.truncate(e.bytes);
        (baseline, out, e.entries, stored)
    })
}

fn sorted_unique(records: &[Record]) -> bool {
    records.windows(2).all(|w| w[0].id < w[1].id)
}

/// A renewal is an entry (an update naming no field) and so a new sample; an unchanged
/// due member not renewed is no entry and keeps the baseline's sample; a kept or removed
/// record and a new one follow the same rule.
#[test]
fn a_renewal_is_an_entry_and_a_new_sample_where_nothing_else_is() {
    let baseline = vec![rec(1, 10), rec(2, 20), rec(3, 30), rec(4, 40)];
    let base_samples = [7, 8, 9, 6];
    let want = |r: Record, due, renew| Wanted {
        record: r,
        due,
        renew,
    };
    let wanted = [
        want(rec(1, 10), true, true),   // renewed: an entry, sample 50
        want(rec(2, 20), true, false),  // unchanged, due: no entry, sample 8
        want(rec(3, 31), false, false), // changed, not due: no entry, sample 9
        want(rec(5, 50), true, false),  // new: sample 50 (4 is removed)
    ];
    let mut out = [0u8; 256];
    let mut stored = Vec::new();
    let e = encode_delta(&baseline, &wanted, &mut out, &mut stored);
    assert_eq!(e.entries, 3, "a renewal, a removal, a new entity");
    let (mut records, mut samples) = (Vec::new(), Vec::new());
    apply_delta_sampled(
        (&baseline, &base_samples),
        (&out[..e.bytes], e.entries),
        50,
        (&mut records, &mut samples),
    )
    .unwrap();
    assert_eq!(records, stored);
    assert_eq!(
        records,
        vec![rec(1, 10), rec(2, 20), rec(3, 30), rec(5, 50)]
    );
    assert_eq!(samples, vec![50, 8, 9, 50]);
    // Missing baseline samples read 0; the records are apply_delta's.
    apply_delta_sampled(
        (&baseline, &[]),
        (&out[..e.bytes], e.entries),
        50,
        (&mut records, &mut samples),
    )
    .unwrap();
    assert_eq!(samples, vec![50, 0, 0, 50]);
}

/// What is drawn: per entity of the newest snapshot, its record or the one drawn before,
/// whichever holds the newer sample; entities the newest lacks are gone.
#[test]
fn the_newest_sample_of_each_entity_is_drawn() {
    let newest = [rec(1, 10), rec(2, 20), rec(4, 40)];
    let newest_samples = [5, 9, 9];
    let before = [rec(1, 11), rec(2, 19), rec(3, 30)];
    let before_samples = [7, 8, 9];
    let (mut records, mut samples) = (Vec::new(), Vec::new());
    freshen(
        (&newest, &newest_samples),
        (&before, &before_samples),
        (&mut records, &mut samples),
    );
    assert_eq!(records, vec![rec(1, 11), rec(2, 20), rec(4, 40)]);
    assert_eq!(samples, vec![7, 9, 9]);
}

proptest! {
    #[test]
    fn a_valid_delta_decodes_to_what_the_server_stored(
        (baseline, bytes, count, stored) in valid_delta()
    ) {
        let mut decoded = Vec::new();
        prop_assert_eq!(apply_delta(&baseline, &bytes, count, &mut decoded), Ok(()));
        prop_assert_eq!(decoded, stored);
    }

    #[test]
    fn every_truncation_is_a_clean_error(
        (baseline, bytes, count, _stored) in valid_delta()
    ) {
        let mut decoded = Vec::new();
        for cut in 0..bytes.len() {
            prop_assert_eq!(
                apply_delta(&baseline, &bytes[..cut], count, &mut decoded),
                Err(DecodeError::Truncated),
                "cut at {} of {}", cut, bytes.len()
            );
        }
    }

    #[test]
    fn a_corrupted_delta_is_an_error_or_a_well_formed_snapshot(
        (baseline, mut bytes, count, _stored) in valid_delta(),
        flips in prop::collection::vec((any::<usize>(), 1u8..), 1..4),
        count_delta in -2i32..3,
    ) {
        if bytes.is_empty() {
            bytes.push(0);
        }
        for (at, mask) in flips {
            let n = bytes.len();
            bytes[at % n] ^= mask;
        }
        let count = (i32::from(count) + count_delta).clamp(0, i32::from(u16::MAX)) as u16;
        let mut decoded = Vec::new();
        if apply_delta(&baseline, &bytes, count, &mut decoded).is_ok() {
            prop_assert!(sorted_unique(&decoded));
        }
    }

    #[test]
    fn random_bytes_never_panic(
        baseline in records(8),
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        count in 0u16..16,
    ) {
        let mut decoded = Vec::new();
        if apply_delta(&baseline, &bytes, count, &mut decoded).is_ok() {
            prop_assert!(sorted_unique(&decoded));
        }
    }
}
