"""The page's stylesheet, inline: system fonts, light cards, tabular figures."""

CSS = """
:root { --ink: #0f172a; --muted: #64748b; --line: #e2e8f0; --bg: #f1f5f9; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans",
  Arial, sans-serif; }
header { background: var(--ink); color: #fff; padding: 28px 0 64px; }
h1 { margin: 0 0 20px; font-size: 26px; font-weight: 700; overflow-wrap: anywhere; }
.wrap, main, footer { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 16px; }
.card { background: #1e293b; border-radius: 10px; padding: 14px 18px; }
.card .label { color: #94a3b8; font-size: 12px; letter-spacing: .06em; text-transform: uppercase; }
.card .value { font-size: 30px; font-weight: 700; font-variant-numeric: tabular-nums; }
.card .value.absent { font-size: 18px; font-weight: 500; color: #94a3b8; padding: 8px 0 6px; }
.card .detail { color: #cbd5e1; font-size: 13px; overflow-wrap: anywhere; }
main { margin-top: -40px; }
nav { display: flex; gap: 6px; flex-wrap: wrap; background: #fff; border: 1px solid var(--line);
  border-radius: 10px; padding: 8px 12px; }
nav a { color: var(--accent); text-decoration: none; padding: 4px 10px; border-radius: 6px; }
nav a:hover { background: #eff6ff; }
section { background: #fff; border: 1px solid var(--line); border-radius: 12px;
  padding: 20px 24px; margin: 20px 0; }
h2 { margin: 0 0 4px; font-size: 20px; }
.lead { margin: 0 0 8px; color: var(--muted); }
figure { margin: 12px 0 18px; }
figure svg { display: block; width: 100%; height: auto; font-family: inherit; }
svg .halo { paint-order: stroke; stroke: #fff; stroke-width: 4px; stroke-linejoin: round; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.table-wrap { max-height: 520px; overflow: auto; border: 1px solid var(--line); border-radius: 8px;
  margin: 12px 0; }
table { border-collapse: collapse; width: 100%; font-size: 14px;
  font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 10px 12px; }
th, td { padding: 6px 12px; border-top: 1px solid var(--line); text-align: left; }
thead th { position: sticky; top: 0; background: #f8fafc; color: var(--muted); font-weight: 600; }
tbody th { font-weight: 500; overflow-wrap: anywhere; }
.num { text-align: right; white-space: nowrap; }
tbody tr:nth-child(even) { background: #f8fafc; }
.missing { color: #92400e; background: #fffbeb; border: 1px solid #fde68a; border-radius: 8px;
  padding: 8px 12px; }
.note { color: var(--muted); font-style: italic; }
details { margin-top: 8px; color: var(--muted); font-size: 14px; }
details dt { font-weight: 600; color: var(--ink); margin-top: 6px; }
details dd { margin: 0 0 0 16px; }
@media (max-width: 800px) { .cards { grid-template-columns: repeat(2, 1fr); } }
footer { color: var(--muted); font-size: 13px; padding-bottom: 32px; }
"""
