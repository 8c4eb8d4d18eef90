"""The daily intelligence report: what the honeypots saw in a day, as a PDF with charts.

`collect` reads everything from PostgreSQL for the interval (and the one before, for the change);
`render_pdf` draws it with matplotlib (Agg, PNG without timestamps) and fpdf2 (fixed creation
date: the interval's end). The same data gives the same bytes, so a rerun or a backfill of a day
replaces the report with an identical one unless the day's data changed.
"""

from __future__ import annotations

import io
from datetime import datetime

TOP = 10


def _rows(conn, sql: str, args: dict) -> list[dict]:
    return [dict(r) for r in conn.execute(sql, args)]


def collect(conn, start: datetime, end: datetime) -> dict:
    a = {"s": start, "e": end, "ps": start - (end - start), "top": TOP}

    def totals(s, e) -> dict:
        r = conn.execute(
            """SELECT count(*) AS events, coalesce(sum(occurrences), 0) AS occurrences,
                      count(DISTINCT source_ip) AS sources, count(DISTINCT honeyjar_id) AS jars,
                      coalesce(avg(threat_level), 0)::float8 AS avg_level
                 FROM events WHERE created_at >= %s AND created_at < %s""", (s, e)).fetchone()
        al = conn.execute("SELECT count(*) AS n FROM alerts WHERE first_seen_at >= %s AND first_seen_at < %s",
                          (s, e)).fetchone()["n"]
        rej = conn.execute("""SELECT count(*) FILTER (WHERE status = 'rejected') AS rejected,
                                     count(*) FILTER (WHERE status = 'duplicate') AS duplicates
                                FROM event_receipts WHERE received_at >= %s AND received_at < %s""", (s, e)).fetchone()
        return {"events": int(r["events"]), "occurrences": int(r["occurrences"]), "sources": int(r["sources"]),
                "jars": int(r["jars"]), "avg_level": round(float(r["avg_level"]), 2), "alerts": int(al),
                "rejected": int(rej["rejected"]), "duplicates": int(rej["duplicates"])}

    today, before = totals(start, end), totals(a["ps"], start)
    change = {k: today[k] - before[k] for k in today}
    top_sources = _rows(conn, """
        SELECT host(source_ip) AS ip, coalesce(max(country), '--') AS country, coalesce(max(asn_org), '') AS asn,
               sum(occurrences)::bigint AS n, max(threat_level) AS level
          FROM events WHERE created_at >= %(s)s AND created_at < %(e)s
         GROUP BY source_ip ORDER BY n DESC, ip LIMIT %(top)s""", a)
    by = {}
    for name, col in (("countries", "coalesce(country, '--')"), ("asns", "coalesce(asn_org, '(private/unknown)')"),
                      ("ports", "coalesce(destination_port::text, '-')"), ("kinds", "event_kind"),
                      ("usernames", "username")):
        by[name] = _rows(conn, f"""
            SELECT {col} AS k, sum(occurrences)::bigint AS n FROM events
             WHERE created_at >= %(s)s AND created_at < %(e)s {"AND username IS NOT NULL" if name == "usernames" else ""}
             GROUP BY 1 ORDER BY n DESC, k LIMIT %(top)s""", a)
    by["passwords"] = _rows(conn, """
        SELECT payload->'sting'->>'password_tried' AS k, sum(occurrences)::bigint AS n FROM events
         WHERE created_at >= %(s)s AND created_at < %(e)s AND payload->'sting' ? 'password_tried'
         GROUP BY 1 ORDER BY n DESC, k LIMIT %(top)s""", a)
    nr = conn.execute("""
        WITH today AS (SELECT DISTINCT source_ip FROM events WHERE created_at >= %(s)s AND created_at < %(e)s)
        SELECT count(*) FILTER (WHERE NOT EXISTS (
                   SELECT 1 FROM events p WHERE p.source_ip = t.source_ip AND p.created_at >= %(s)s - INTERVAL '30 days'
                      AND p.created_at < %(s)s)) AS new,
               count(*) AS total FROM today t""", a).fetchone()
    ioc_hits = _rows(conn, """
        SELECT t.ioc_type AS type, t.ioc_value AS value, round(coalesce(t.score, t.confidence)::numeric, 2)::float8 AS score,
               round(t.confidence::numeric, 2)::float8 AS confidence, count(*)::bigint AS hits
          FROM ioc_sightings s JOIN threat_intel t ON t.id = s.ioc_id
         WHERE s.sighted_at >= %(s)s AND s.sighted_at < %(e)s
         GROUP BY 1, 2, 3, 4 ORDER BY hits DESC, value LIMIT %(top)s""", a)
    alerts = _rows(conn, """
        SELECT severity AS k, count(*)::bigint AS n FROM alerts WHERE first_seen_at >= %(s)s AND first_seen_at < %(e)s
         GROUP BY 1 ORDER BY array_position(ARRAY['critical','high','medium','low'], severity::text)""", a)
    hourly = _rows(conn, """
        SELECT date_trunc('hour', created_at) AS h, sum(occurrences)::bigint AS n FROM events
         WHERE created_at >= %(s)s AND created_at < %(e)s GROUP BY 1 ORDER BY 1""", a)
    return {
        "start": start.isoformat(), "end": end.isoformat(), "totals": today, "previous": before, "change": change,
        "top_sources": top_sources, **by, "new_sources": int(nr["new"]), "returning_sources": int(nr["total"] - nr["new"]),
        "ioc_hits": ioc_hits, "alerts_by_severity": alerts,
        "hourly": [{"h": r["h"].isoformat(), "n": int(r["n"])} for r in hourly],
    }


def _chart(kind: str, labels: list[str], values: list[float], title: str, color: str = "#c0392b") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 2.6), dpi=110)
    try:
        if not values:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", fontsize=12, color="#777")
            ax.set_axis_off()
        elif kind == "barh":
            ax.barh(labels[::-1], values[::-1], color=color)
            ax.tick_params(axis="y", labelsize=7)
        else:
            ax.bar(labels, values, color=color)
            ax.tick_params(axis="x", labelsize=6, rotation=90)
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
        return buf.getvalue()
    finally:
        plt.close(fig)


def _txt(s) -> str:
    """fpdf2's core fonts are Latin-1: anything else is shown escaped, never dropped silently."""
    return str(s).encode("latin-1", "backslashreplace").decode("latin-1")


def render_pdf(summary: dict, report_id: str, generated_at: datetime) -> tuple[bytes, int]:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creation_date(generated_at)
    pdf.set_producer("STING Data Pipelines")
    pdf.set_title(f"STING daily intelligence report {report_id}")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _txt(f"Daily intelligence report {report_id}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(0, 6, _txt(f"Interval {summary['start']} to {summary['end']} (UTC)"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    t, c = summary["totals"], summary["change"]
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, "Totals (change from the day before)", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    for k, label in (("occurrences", "events seen"), ("events", "events stored (after de-duplication)"),
                     ("sources", "distinct sources"), ("alerts", "alerts raised"), ("duplicates", "duplicates folded"),
                     ("rejected", "malformed events rejected"), ("avg_level", "average threat level")):
        pdf.cell(0, 5, _txt(f"{label}: {t[k]} ({c[k]:+})"), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 5, _txt(f"new sources: {summary['new_sources']}, returning (seen in the 30 days before): "
                        f"{summary['returning_sources']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    hours = summary["hourly"]
    pdf.image(io.BytesIO(_chart("bar", [h["h"][11:16] for h in hours], [h["n"] for h in hours], "Events per hour",
                                "#2c3e50")), w=180)
    for key, title in (("countries", "Top countries"), ("asns", "Top AS organisations"),
                       ("ports", "Top destination ports"), ("usernames", "Usernames tried"),
                       ("passwords", "Passwords tried")):
        rows = summary[key]
        pdf.image(io.BytesIO(_chart("barh", [_txt(r["k"])[:40] for r in rows], [r["n"] for r in rows], title)), w=180)
    pdf.add_page()
    _table(pdf, "Top sources", ["source", "country", "AS organisation", "events", "max level"],
           [[r["ip"], r["country"], r["asn"][:30], r["n"], r["level"]] for r in summary["top_sources"]], [45, 20, 70, 25, 25])
    _table(pdf, "IOC hits", ["type", "value", "score", "confidence", "hits"],
           [[r["type"], r["value"][:60], r["score"], r["confidence"], r["hits"]] for r in summary["ioc_hits"]],
           [20, 105, 20, 22, 18])
    _table(pdf, "Alerts by severity", ["severity", "alerts"],
           [[r["k"], r["n"]] for r in summary["alerts_by_severity"]], [40, 30])
    al = summary["alerts_by_severity"]
    pdf.image(io.BytesIO(_chart("bar", [r["k"] for r in al], [r["n"] for r in al], "Alerts by severity", "#e67e22")),
              w=120)
    return bytes(pdf.output()), pdf.pages_count


def _table(pdf, title: str, header: list[str], rows: list[list], widths: list[int]) -> None:
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 8, _txt(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 8)
    for h, w in zip(header, widths, strict=True):
        pdf.cell(w, 6, _txt(h), border=1)
    pdf.ln()
    pdf.set_font("Helvetica", "", 8)
    if not rows:
        pdf.cell(sum(widths), 6, "none", border=1, new_x="LMARGIN", new_y="NEXT")
    for r in rows:
        for v, w in zip(r, widths, strict=True):
            pdf.cell(w, 6, _txt(v), border=1)
        pdf.ln()
    pdf.ln(3)


def report_key(report_id: str, day: datetime) -> str:
    return f"reports/{day:%Y}/{day:%m}/report_{report_id}.pdf"
