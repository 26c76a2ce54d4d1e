"""The look every deployconv HTML page shares (the export report, `eval --out`, the matrix page): one stylesheet and
one Content-Security-Policy (no scripts, no remote content; images are data: URIs). A module of its own so a
section that renders a standalone page does not import the page that imports it."""

from __future__ import annotations

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1500px;
color:#1d1d1f;padding:0 16px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:8px 0;font-size:12.5px}
th,td{border:1px solid #d8d8d8;padding:3px 7px;text-align:left;vertical-align:top}
thead th{background:#f3f4f6;position:sticky;top:0}
table.kv th{background:#f7f7f8;font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap;font-family:ui-monospace,Menlo,monospace}
td.name{font-weight:600;white-space:nowrap}
.pass{background:#e6f4ea;color:#14532d}.fail{background:#fde8e8;color:#7f1d1d}.na{color:#888}
td.dla{background:#e6f0fb}td.gpu{background:#fff4e0}
.scroll{overflow-x:auto}
.badge{display:inline-block;border-radius:4px;padding:2px 8px;margin-right:6px;font-weight:600}
.badge.pass{background:#1f7a3a;color:#fff}.badge.fail{background:#b42318;color:#fff}.badge.na{background:#666;color:#fff}
.verdict{font-weight:600}p.verdict.pass,p.verdict.fail{display:inline-block;padding:2px 8px;border-radius:4px}
ul.notes{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 6px 6px 28px;margin:6px 0}
.warn{background:#fff8e1;padding:4px 8px}
figure{margin:8px 0}figure img{max-width:100%;height:auto}figcaption{font-size:12px;color:#555}
.run{border-top:1px dashed #ccc;margin-top:14px}
.small{font-size:12px;color:#666}
"""
