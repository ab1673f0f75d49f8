//! The ASCII packet ladder: one column per capture point, one row per sighting in path
//! order, an arrow from the previous point, and an `X` where the query was lost.

use crate::diagnose::PacketLadder;

/// Width of the time column on the left.
const TIME_WIDTH: usize = 12;

fn column_width(points: &[String]) -> usize {
    points
        .iter()
        .map(|p| p.chars().count())
        .max()
        .unwrap_or(0)
        .max(8)
        + 3
}

fn center(col: usize, width: usize) -> usize {
    TIME_WIDTH + col * width + width / 2
}

fn row(
    time: &str,
    cells: &[(usize, char)],
    fill: Option<(usize, usize)>,
    width: usize,
    n: usize,
    note: &str,
) -> String {
    let mut line: Vec<char> = vec![' '; TIME_WIDTH + n * width];
    for (i, ch) in time.chars().take(TIME_WIDTH - 1).enumerate() {
        line[i] = ch;
    }
    for col in 0..n {
        line[center(col, width)] = '|';
    }
    if let Some((from, to)) = fill {
        let (a, b) = (center(from, width), center(to, width));
        for c in line.iter_mut().take(b).skip(a + 1) {
            *c = '-';
        }
        if b > a + 1 {
            line[b - 1] = '>';
        }
    }
    for &(col, ch) in cells {
        line[center(col, width)] = ch;
    }
    let mut s: String = line.into_iter().collect();
    s = s.trim_end().to_string();
    if !note.is_empty() {
        s.push_str("  ");
        s.push_str(note);
    }
    s
}

/// The ladder as lines of text (no trailing newline on the last).
pub fn render(l: &PacketLadder) -> Vec<String> {
    let n = l.points.len();
    let width = column_width(&l.points);
    let mut out = Vec::new();
    let mut header: Vec<char> = vec![' '; TIME_WIDTH + n * width];
    for (col, p) in l.points.iter().enumerate() {
        let len = p.chars().count();
        let start = center(col, width).saturating_sub(len / 2);
        for (i, ch) in p.chars().enumerate() {
            if let Some(slot) = header.get_mut(start + i) {
                *slot = ch;
            }
        }
    }
    out.push(
        header
            .into_iter()
            .collect::<String>()
            .trim_end()
            .to_string(),
    );
    let col_of = |point: &str| l.points.iter().position(|p| p == point);
    let mut prev: Option<usize> = None;
    for s in &l.seen {
        let Some(col) = col_of(&s.point) else {
            continue;
        };
        let marker = if s.answered { 'A' } else { '*' };
        let note = format!("{} -> {}", s.client, s.server);
        let fill = prev.filter(|p| *p < col).map(|p| (p, col));
        out.push(row(
            &format!("+{:.3}ms", s.offset_ms),
            &[(col, marker)],
            fill,
            width,
            n,
            &note,
        ));
        prev = Some(col);
    }
    let last = col_of(&l.last_point);
    let lost_note = match &l.answered_at {
        Some(a) => format!("answer seen at {a}, lost on the way back to the client"),
        None => match last.and_then(|c| l.points.get(c + 1)) {
            Some(next) => format!("lost after {}: never seen at {next}", l.last_point),
            None => format!("lost after {}", l.last_point),
        },
    };
    let x_col = match (&l.answered_at, last) {
        (None, Some(c)) if c + 1 < n => Some(c + 1),
        _ => None,
    };
    match x_col {
        Some(c) => out.push(row(
            "",
            &[(c, 'X')],
            last.map(|p| (p, c)),
            width,
            n,
            &lost_note,
        )),
        None => out.push(row("", &[], None, width, n, &format!("X {lost_note}"))),
    }
    out
}
