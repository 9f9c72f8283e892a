//! Product sets: a set of points in a grid, written as a few disjoint boxes.
//!
//! `gatepass ca gaps` finds, say, every (user, app, methods, platform,
//! location, client app) that a weak sign-in reaches. Listed point by point
//! that is thousands of rows for one policy hole; as boxes — "these users ×
//! every app × password only × anywhere" — it is one. [`boxes`] turns a set
//! of points into disjoint boxes whose union is exactly the set:
//!
//! ```text
//!  points {(u1,a,p) (u1,b,p) (u2,a,p) (u2,b,p) (u3,a,p)}
//!  fold the last axis:   (u1,a){p} (u1,b){p} (u2,a){p} (u2,b){p} (u3,a){p}
//!  fold the next:        (u1){a,b}{p} (u2){a,b}{p} (u3){a}{p}
//!  fold the first:       {u1,u2}{a,b}{p}   {u3}{a}{p}
//! ```
//!
//! Each fold groups the items by everything but one coordinate and collects
//! that coordinate into a set, so every point lands in exactly one box: the
//! boxes never overlap and cover nothing else. Axes folded first (the last
//! ones) merge most; put the axis you want read as "who" first.

use std::collections::BTreeMap;

/// One box: a set of indices per axis (each sorted, none empty).
pub type Box<const N: usize> = [Vec<u32>; N];

/// Disjoint boxes whose union is exactly `points` (duplicates are one
/// point), sorted.
pub fn boxes<const N: usize>(points: impl IntoIterator<Item = [u32; N]>) -> Vec<Box<N>> {
    // An item: the coordinates not folded yet, and the sets of those that are.
    type Item = (Vec<u32>, Vec<Vec<u32>>);
    let mut items: Vec<Item> = points
        .into_iter()
        .map(|p| (p.to_vec(), Vec::new()))
        .collect();
    for _ in 0..N {
        let mut grouped: BTreeMap<Item, Vec<u32>> = BTreeMap::new();
        for (mut open, folded) in items {
            let Some(last) = open.pop() else { continue };
            grouped.entry((open, folded)).or_default().push(last);
        }
        items = grouped
            .into_iter()
            .map(|((open, mut folded), mut values)| {
                values.sort_unstable();
                values.dedup();
                folded.insert(0, values);
                (open, folded)
            })
            .collect();
    }
    let mut out: Vec<Box<N>> = items
        .into_iter()
        .filter_map(|(_, folded)| <[Vec<u32>; N]>::try_from(folded).ok())
        .collect();
    out.sort_unstable();
    out
}

/// Every point of a box.
pub fn points<const N: usize>(b: &Box<N>) -> Vec<[u32; N]> {
    let mut out = vec![[0u32; N]];
    for (axis, values) in b.iter().enumerate() {
        out = out
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |&v| {
                    let mut q = p;
                    q[axis] = v;
                    q
                })
            })
            .collect();
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeSet;

    fn union<const N: usize>(bs: &[Box<N>]) -> (BTreeSet<[u32; N]>, usize) {
        let all: Vec<[u32; N]> = bs.iter().flat_map(points).collect();
        let n = all.len();
        (all.into_iter().collect(), n)
    }

    #[test]
    fn product_a_full_grid_is_one_box() {
        let mut pts = Vec::new();
        for u in 0..4 {
            for a in 0..3 {
                for m in 0..2 {
                    pts.push([u, a, m]);
                }
            }
        }
        let bs = boxes(pts.clone());
        assert_eq!(bs, vec![[vec![0, 1, 2, 3], vec![0, 1, 2], vec![0, 1]]]);
        assert_eq!(union(&bs).0, pts.into_iter().collect());
    }

    #[test]
    fn product_the_doc_example_gives_two_boxes() {
        let pts = [[1, 0, 9], [1, 1, 9], [2, 0, 9], [2, 1, 9], [3, 0, 9]];
        let bs = boxes(pts);
        assert_eq!(
            bs,
            vec![
                [vec![1, 2], vec![0, 1], vec![9]],
                [vec![3], vec![0], vec![9]],
            ]
        );
    }

    #[test]
    fn product_boxes_are_disjoint_and_cover_exactly_random_sets() {
        // A small deterministic generator: no dependency, many shapes.
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let density = next() % 100;
            let mut pts = BTreeSet::new();
            for u in 0..5 {
                for a in 0..4 {
                    for m in 0..3 {
                        for l in 0..2 {
                            if next() % 100 < density {
                                pts.insert([u, a, m, l]);
                            }
                        }
                    }
                }
            }
            let bs = boxes(pts.iter().copied());
            let (covered, counted) = union(&bs);
            assert_eq!(covered, pts, "the union is exactly the set");
            assert_eq!(counted, pts.len(), "no point is in two boxes");
            assert!(bs.iter().all(|b| b.iter().all(|axis| !axis.is_empty())));
        }
        assert!(boxes::<3>(Vec::new()).is_empty());
    }
}
