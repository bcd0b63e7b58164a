"""Rich terminal view of an :class:`InspectReport`: header, coverage table, findings table, notes."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from scaffold.inspection.findings import Finding, InspectReport, Severity

_SEVERITY_STYLE = {Severity.FAILS: "bold red", Severity.SILENT: "yellow", Severity.OK: "green"}
_EVIDENCE_WIDTH = 160


def _human(count: int) -> str:
    for unit, size in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def _evidence_text(finding: Finding) -> str:
    """The evidence keys a reviewer needs first, shortened to one cell."""
    parts = []
    for key, value in finding.evidence.items():
        if value in (None, [], {}, ""):
            continue
        if isinstance(value, list) and len(value) > 2:
            text = f"[{len(value)} items]"
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))
        parts.append(f"{key}={text}")
    joined = "; ".join(parts)
    return joined if len(joined) <= _EVIDENCE_WIDTH else joined[: _EVIDENCE_WIDTH - 1] + "…"


def _where(finding: Finding) -> str:
    modules = finding.modules[:3]
    more = len(finding.modules) - len(modules)
    text = "\n".join(modules) + (f"\n(+{more} more)" if more > 0 else "")
    return text or ", ".join(finding.classes)


def _header(report: InspectReport) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    blocks = ", ".join(f"{names[0].rsplit('.', 1)[0]} ({len(names)})" for names in report.autoround_blocks if names)
    stacks = ", ".join(f"{s['path']} ({s['count']} × {s['block_class']})" for s in report.block_stacks)
    rows: list[tuple[str, Any]] = [
        ("target", report.target),
        ("model_type", report.model_type),
        ("class", f"{report.model_class} (config {report.config_class})"),
        ("parameters", f"{_human(report.parameters)} ({report.parameters:,}), {report.modules:,} modules"),
        ("AutoRound blocks", blocks or "[red]none[/red]"),
        ("block stacks", stacks or "none"),
        ("probes", "dynamic (tiny instance)" if report.dynamic else "static only"),
    ]
    for label, value in rows:
        grid.add_row(label, str(value))
    return grid


def _coverage_table(report: InspectReport) -> Table:
    table = Table(title="Block weight coverage (what AutoRound quantizes today)", title_justify="left")
    for column in ("stack", "blocks", "linear params", "quantized", "share", "layers", "left in float"):
        table.add_column(column, justify="right" if column not in ("stack", "left in float") else "left")
    for cov in report.coverage:
        total = cov.linear_params or 1
        where = ", ".join(f"{reason} {n / total:.0%}" for reason, n in cov.where_unquantized.items() if n)
        style = "green" if cov.share >= 0.999 else "yellow" if cov.share > 0 else "red"
        table.add_row(
            cov.stack,
            str(cov.blocks),
            _human(cov.linear_params),
            _human(cov.quantizable_params),
            f"[{style}]{cov.share:.0%}[/{style}]",
            f"{cov.quantizable_layers}/{cov.linear_layers}",
            where or "-",
        )
    return table


def _findings_table(findings: list[Finding]) -> Table:
    table = Table(title="Findings", title_justify="left", show_lines=True)
    table.add_column("failure mode", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    for column in ("where", "summary / evidence", "fix"):
        table.add_column(column, overflow="fold")
    for finding in findings:
        style = _SEVERITY_STYLE[finding.severity]
        table.add_row(
            f"{finding.mode.value}\n[dim]{finding.probe}[/dim]",
            f"[{style}]{finding.severity.value}[/{style}]",
            _where(finding),
            f"{finding.summary}\n[dim]{_evidence_text(finding)}[/dim]",
            finding.fix,
        )
    return table


def _stock_line(stock: dict) -> str:
    if stock.get("exception"):
        where = f" (raised at {stock['raised_at']})" if stock.get("raised_at") else ""
        return f"[red]crash[/red]: {stock['exception']}{where}"
    share = stock.get("share")
    text = f"{stock.get('status')}, {share:.1%} of the block weights packed" if share is not None else stock["status"]
    unpacked = stock.get("unpacked") or []
    return text + (f"; unpacked: {', '.join(unpacked[:4])}" + (" ..." if len(unpacked) > 4 else "") if unpacked else "")


def print_report(report: InspectReport, console: Console) -> None:
    """Print ``report`` for a human: header, coverage, findings, notes, and the verdict."""
    console.print(_header(report))
    if report.coverage:
        console.print(_coverage_table(report))
        console.print(f"model share of block linear weights quantized today: [bold]{report.model_share():.1%}[/bold]")
    if report.findings:
        console.print(_findings_table(report.findings))
    for note in report.notes:
        console.print(f"[dim]note:[/dim] {note}")
    problems = report.problems
    if report.stock:
        console.print(f"stock AutoRound on the tiny instance (float32): {_stock_line(report.stock)}")
    console.print(f"[dim]probes computed in {report.precision}, whatever AutoRound tunes in on this machine[/dim]")
    if problems:
        console.print(f"[bold red]{len(problems)} problem(s)[/bold red]: run `scaffold new-arch` to generate fixes")
    elif report.inconclusive:
        console.print(f"[bold yellow]inconclusive[/bold yellow]: {report.inconclusive}; no dynamic probe ran")
    else:
        console.print("[bold green]nothing to fix[/bold green]: AutoRound handles this architecture as is")
