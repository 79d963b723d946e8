//! What the bench's sections hand back, and every form it is written in: the text tables on
//! stdout, the JSON under `target/bench/`, the Markdown of `docs/BENCH.md` and the bars of the
//! chart (drawn by the peers' `bench-chart` from the JSON).
//!
//! A section reports [`Table`]s (a row per server: its figures, or why it did not run, or its
//! failure), [`Target`]s (a goal of the issues, its figure and PASS or MISS, with the ratios it
//! compares as chart [`Bar`]s), the failures that fail the bench (sockserve's) and notes (a
//! peer's failure is a finding about the peer).

use serde_json::{Value, json};

/// Everything the sections reported.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub(crate) tables: Vec<Table>,
    pub(crate) targets: Vec<Target>,
    /// Failures of sockserve's servers (or of the bench itself): they fail the run.
    pub(crate) failures: Vec<String>,
    /// Findings that do not fail the run (a peer that failed a cell, resent datagrams).
    pub(crate) notes: Vec<String>,
}

/// One table: a heading, the column names (the first is the server's) and a row per server.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) label: String,
    /// The names of the columns after the server's.
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<Row>,
}

/// One server's row.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) server: String,
    pub(crate) outcome: Outcome,
}

/// What a row shows.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Its cells (one per column) and the same figures as JSON (numbers, not text).
    Figures { cells: Vec<String>, json: Value },
    /// Not run here: why.
    Skipped(String),
    /// No figure: the first failure.
    Failed(String),
    /// No figure from a peer, whose failure is a finding about the peer (CPython's
    /// `socketserver`, backlog 5, refusing a burst of connections): the first failure.
    Finding(String),
}

/// One goal of the issues and how this run did against it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The goal, in words: `threading, ping-pong, 10 conn: >= 0.9x std`.
    pub(crate) what: String,
    /// What was measured, in words.
    pub(crate) figure: String,
    /// `None`: no figure to judge (the row did not run).
    pub(crate) pass: Option<bool>,
    /// The ratios it compares, for the chart.
    pub(crate) bars: Vec<Bar>,
}

/// A bar of the chart.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bar {
    pub(crate) label: String,
    pub(crate) ratio: f64,
    pub(crate) goal: Option<f64>,
    pub(crate) pass: Option<bool>,
}

/// `1.23x`, or `-` without a figure.
pub(crate) fn times(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
}

/// `PASS`, `MISS`, or `-` without a figure.
pub(crate) fn verdict(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "PASS",
        Some(false) => "MISS",
        None => "-",
    }
}

/// The first line of a message, for a table cell.
pub(crate) fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

impl Row {
    pub(crate) fn figures(server: impl Into<String>, cells: Vec<String>, json: Value) -> Row {
        Row {
            server: server.into(),
            outcome: Outcome::Figures { cells, json },
        }
    }

    pub(crate) fn skipped(server: impl Into<String>, reason: impl Into<String>) -> Row {
        Row {
            server: server.into(),
            outcome: Outcome::Skipped(reason.into()),
        }
    }

    pub(crate) fn failed(server: impl Into<String>, error: impl Into<String>) -> Row {
        Row {
            server: server.into(),
            outcome: Outcome::Failed(error.into()),
        }
    }

    /// A peer's row without a figure, its failure a finding about the peer.
    pub(crate) fn finding(server: impl Into<String>, error: impl Into<String>) -> Row {
        Row {
            server: server.into(),
            outcome: Outcome::Finding(error.into()),
        }
    }

    /// The cells after the server's, as the text table shows them.
    fn cells(&self) -> Vec<String> {
        match &self.outcome {
            Outcome::Figures { cells, .. } => cells.clone(),
            Outcome::Skipped(reason) => vec![reason.clone()],
            Outcome::Failed(e) => vec![format!("FAILED: {}", first_line(e))],
            Outcome::Finding(e) => vec![format!("FAILED (the peer's): {}", first_line(e))],
        }
    }
}

impl Table {
    pub(crate) fn new(label: impl Into<String>, columns: &[&str]) -> Table {
        Table {
            label: label.into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// The table as text: the heading, then aligned columns.
    pub(crate) fn text(&self) -> String {
        let mut lines = vec![
            std::iter::once("  server".to_owned())
                .chain(self.columns.iter().cloned())
                .collect::<Vec<_>>(),
        ];
        for row in &self.rows {
            let mut line = vec![format!("  {}", row.server)];
            line.extend(row.cells());
            lines.push(line);
        }
        format!("{}\n{}", self.label, align(&lines))
    }

    /// The table as Markdown, under a heading of its own.
    pub(crate) fn markdown(&self) -> String {
        let mut out = format!(
            "#### {}\n\n| server | {} |\n|---|",
            self.label,
            self.columns.join(" | ")
        );
        out.push_str(&"---:|".repeat(self.columns.len()));
        out.push('\n');
        for row in &self.rows {
            let cells = row.cells();
            let cells = match &row.outcome {
                // A skip or a failure spans the row: its text in the first column, the rest
                // left empty.
                Outcome::Figures { .. } => cells,
                _ => {
                    let mut padded = cells;
                    padded.resize(self.columns.len(), String::new());
                    padded
                }
            };
            out.push_str(&format!(
                "| {} | {} |\n",
                escape(&row.server),
                cells
                    .iter()
                    .map(|c| escape(c))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
        out
    }

    fn json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| match &row.outcome {
                Outcome::Figures { json, .. } => {
                    json!({"server": row.server, "status": "ok", "figures": json})
                }
                Outcome::Skipped(reason) => {
                    json!({"server": row.server, "status": "skipped", "reason": reason})
                }
                Outcome::Failed(e) => {
                    json!({"server": row.server, "status": "failed", "error": e})
                }
                Outcome::Finding(e) => {
                    json!({"server": row.server, "status": "failed", "finding": true, "error": e})
                }
            })
            .collect();
        json!({"label": self.label, "columns": self.columns, "rows": rows})
    }
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

impl Target {
    /// A target that compares one ratio with a lower bound: the line and its bar.
    pub(crate) fn at_least(what: String, ratio: Option<f64>, goal: f64, extra: &str) -> Target {
        let pass = ratio.map(|r| r >= goal);
        Target {
            figure: format!("{}{extra}", times(ratio)),
            pass,
            bars: ratio
                .map(|ratio| Bar {
                    label: what.clone(),
                    ratio,
                    goal: Some(goal),
                    pass,
                })
                .into_iter()
                .collect(),
            what,
        }
    }
}

impl Output {
    /// The targets as an aligned text table.
    pub(crate) fn targets_text(&self) -> String {
        let mut lines = vec![
            ["  target", "figure", "verdict"]
                .map(str::to_owned)
                .to_vec(),
        ];
        for t in &self.targets {
            lines.push(vec![
                format!("  {}", t.what),
                t.figure.clone(),
                verdict(t.pass).to_owned(),
            ]);
        }
        align(&lines)
    }

    /// The targets as a Markdown table.
    pub(crate) fn targets_markdown(&self) -> String {
        let mut out = "| target | figure | verdict |\n|---|---|---|\n".to_owned();
        for t in &self.targets {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                escape(&t.what),
                escape(&t.figure),
                verdict(t.pass)
            ));
        }
        out
    }

    /// The chart's bars: every target's ratios.
    pub(crate) fn bars(&self) -> Vec<Bar> {
        self.targets.iter().flat_map(|t| t.bars.clone()).collect()
    }

    /// The whole run as JSON, with `meta` (the command, the machine) and the chart's input.
    pub(crate) fn json(&self, meta: Value) -> Value {
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(|t| json!({"target": t.what, "figure": t.figure, "verdict": verdict(t.pass)}))
            .collect();
        let bars: Vec<Value> = self
            .bars()
            .iter()
            .map(|b| json!({"label": b.label, "ratio": b.ratio, "goal": b.goal, "pass": b.pass}))
            .collect();
        json!({
            "meta": meta,
            "tables": self.tables.iter().map(Table::json).collect::<Vec<_>>(),
            "targets": targets,
            "failures": self.failures,
            "notes": self.notes,
            "chart": {
                "title": "sockserve against its peers: ratios of throughput (median of the runs' ratios)",
                "bars": bars,
            },
        })
    }

    /// The rows that produced no figure, in every table (but a peer's whose failure is a
    /// finding about the peer), the tables without a row, and the servers without a figure in
    /// any table: what `--quick` refuses.
    pub(crate) fn missing_figures(&self) -> Vec<String> {
        let mut missing = Vec::new();
        let mut servers: Vec<(&str, bool)> = Vec::new();
        for row in self.tables.iter().flat_map(|t| &t.rows) {
            let figures = matches!(row.outcome, Outcome::Figures { .. } | Outcome::Skipped(_));
            match servers.iter_mut().find(|(name, _)| *name == row.server) {
                Some((_, any)) => *any |= figures,
                None => servers.push((&row.server, figures)),
            }
        }
        for (server, _) in servers.iter().filter(|(_, any)| !any) {
            missing.push(format!("{server}: no figure in any table"));
        }
        for table in &self.tables {
            if table.rows.is_empty() {
                missing.push(format!("{}: no row", table.label));
            }
            for row in &table.rows {
                match &row.outcome {
                    Outcome::Failed(e) => missing.push(format!(
                        "{} / {}: {}",
                        table.label,
                        row.server,
                        first_line(e)
                    )),
                    Outcome::Figures { json, .. }
                        if json.as_object().is_none_or(|o| o.is_empty()) =>
                    {
                        missing.push(format!("{} / {}: no figures", table.label, row.server))
                    }
                    _ => {}
                }
            }
        }
        missing
    }
}

/// Left-aligns the first column and right-aligns the others; a row with fewer cells (a skip
/// or a failure) prints its text after the first column.
pub(crate) fn align(lines: &[Vec<String>]) -> String {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|col| {
            lines
                .iter()
                .filter(|l| col == 0 || l.len() == columns)
                .map(|l| l[col].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    lines
        .iter()
        .map(|line| {
            let mut out = format!("{:<w$}", line[0], w = widths[0]);
            for (col, cell) in line.iter().enumerate().skip(1) {
                if line.len() == columns {
                    out.push_str(&format!("  {cell:>w$}", w = widths[col]));
                } else {
                    out.push_str(&format!("  {cell}"));
                }
            }
            out.trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Output {
        let mut table = Table::new("TCP ping-pong", &["req/s", "p50"]);
        table.rows.push(Row::figures(
            "a",
            vec!["10".into(), "5us".into()],
            json!({"req_s": 10}),
        ));
        table.rows.push(Row::skipped("b", "n/a: one at a time"));
        table.rows.push(Row::failed("c|d", "boom\nmore"));
        Output {
            tables: vec![table],
            targets: vec![
                Target::at_least("a: >= 0.9x std".into(), Some(0.5), 0.9, ""),
                Target::at_least("a: >= 2x b".into(), None, 2.0, ""),
            ],
            ..Output::default()
        }
    }

    #[test]
    fn every_form_shows_every_row() {
        let out = sample();
        let text = out.tables[0].text();
        assert!(
            text.contains("FAILED: boom") && !text.contains("more"),
            "{text}"
        );
        assert!(text.contains("n/a: one at a time"), "{text}");
        let md = out.tables[0].markdown();
        assert_eq!(
            md.lines().filter(|l| l.starts_with("| ")).count(),
            4,
            "{md}"
        );
        assert!(md.contains("c\\|d"), "{md}");
        let targets = out.targets_text();
        assert!(targets.contains("MISS") && targets.lines().last().unwrap().ends_with('-'));
        let json = out.json(json!({"command": "x"}));
        assert_eq!(json["chart"]["bars"].as_array().unwrap().len(), 1);
        assert_eq!(json["chart"]["bars"][0]["pass"], json!(false));
        assert_eq!(json["tables"][0]["rows"][2]["status"], json!("failed"));
    }

    #[test]
    fn quick_refuses_a_failed_row_and_an_empty_table() {
        let mut out = sample();
        let missing = out.missing_figures();
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert_eq!(missing[0], "c|d: no figure in any table");
        assert!(missing[1].contains("c|d: boom"), "{missing:?}");
        // A peer's failure that is a finding about the peer passes, if the peer has a figure
        // elsewhere.
        out.tables[0].rows[2] = Row::finding("a", "backlog");
        assert_eq!(out.missing_figures(), Vec::<String>::new());
        out.tables[0].rows[0] = Row::finding("a", "backlog");
        assert_eq!(
            out.missing_figures(),
            vec!["a: no figure in any table".to_owned()]
        );
        out.tables[0].rows = sample().tables[0].rows.clone();
        out.tables.push(Table::new("empty", &["x"]));
        out.tables[0].rows.truncate(2);
        assert_eq!(out.missing_figures(), vec!["empty: no row".to_owned()]);
    }
}
