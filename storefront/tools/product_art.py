#!/usr/bin/env python3
"""Product art for the demo catalog: one small SVG illustration per product.

Reads products/demo/catalog.json and writes
storefront/public/assets/products/<key>.svg for every product in it (the
catalog's `image_url` points there). The output is a pure function of the
catalog and this script, so it is committed, and CI runs

    python3 storefront/tools/product_art.py --check

which exits 1 when regenerating would change, add or remove a file.

Each drawing is a flat illustration on a soft backdrop coloured by the
product's category; products this script has no drawing for get a parcel
in a colour derived from their key. Python 3 standard library only.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "products" / "demo" / "catalog.json"
OUT_DIR = ROOT / "storefront" / "public" / "assets" / "products"

# Backdrop and accent per category: (background, spotlight, accent).
PALETTES = {
    "coffee": ("#f6ede4", "#ead8c6", "#8b5a3c"),
    "kitchen": ("#fdf0e6", "#f7d9c4", "#c8553d"),
    "outdoor": ("#e8f1ea", "#cfe3d4", "#3f7d58"),
    "desk": ("#e9eef7", "#d3ddef", "#3c5a99"),
    "home": ("#f4ecf5", "#e6d5e8", "#8a4f7d"),
}
DEFAULT_PALETTE = ("#f1f1ee", "#e2e2dc", "#5b6770")


def fmt(x):
    """Numbers as short, stable text."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def el(tag, **attrs):
    parts = [tag]
    for name, value in attrs.items():
        if isinstance(value, float):
            value = fmt(value)
        parts.append(f'{name.rstrip("_").replace("_", "-")}="{value}"')
    return "<" + " ".join(parts) + "/>"


def rect(x, y, w, h, fill, rx=0, **kw):
    return el("rect", x=x, y=y, width=w, height=h, rx=rx, fill=fill, **kw)


def circle(cx, cy, r, fill, **kw):
    return el("circle", cx=cx, cy=cy, r=r, fill=fill, **kw)


def ellipse(cx, cy, rx, ry, fill, **kw):
    return el("ellipse", cx=cx, cy=cy, rx=rx, ry=ry, fill=fill, **kw)


def path(d, fill, **kw):
    return el("path", d=d, fill=fill, **kw)


def line(x1, y1, x2, y2, stroke, width, **kw):
    return el("line", x1=x1, y1=y1, x2=x2, y2=y2, stroke=stroke,
              stroke_width=width, stroke_linecap="round", **kw)


# --- the drawings: each returns SVG elements centred around (200, 210) ---

def kettle():
    return [
        path("M150 150 Q200 120 250 150 L262 270 Q200 285 138 270 Z", "#c9d1d6"),
        path("M150 150 Q200 120 250 150 L254 175 Q200 150 146 175 Z", "#aeb8bf"),
        path("M142 195 Q95 190 72 140", "none", stroke="#aeb8bf", stroke_width=9,
             stroke_linecap="round"),
        path("M250 165 Q300 160 296 215 Q292 250 258 252", "none", stroke="#3b3b3b",
             stroke_width=12, stroke_linecap="round"),
        rect(185, 118, 30, 14, "#3b3b3b", rx=6),
        circle(200, 214, 14, "#f4f6f7"),
        line(200, 214, 208, 206, "#c8553d", 3),
    ]


def mug():
    return [
        path("M135 140 L265 140 L255 272 Q200 284 145 272 Z", "#e7d3b1"),
        ellipse(200, 140, 65, 14, "#d4bb93"),
        ellipse(200, 142, 56, 10, "#5a3825"),
        path("M262 170 Q318 168 312 212 Q306 250 256 244", "none", stroke="#e7d3b1",
             stroke_width=16, stroke_linecap="round"),
        circle(170, 200, 3, "#b89b72"), circle(215, 228, 3, "#b89b72"),
        circle(232, 186, 2.5, "#b89b72"), circle(186, 250, 2.5, "#b89b72"),
        path("M185 112 Q175 95 188 80 Q200 65 190 50", "none", stroke="#c9b8a6",
             stroke_width=5, stroke_linecap="round"),
        path("M212 114 Q202 97 215 82", "none", stroke="#c9b8a6", stroke_width=5,
             stroke_linecap="round"),
    ]


def beans():
    out = [
        path("M140 120 L260 120 L272 280 L128 280 Z", "#b07b4f"),
        path("M140 120 L260 120 L256 140 L144 140 Z", "#94623c"),
        rect(160, 175, 80, 60, "#f3e6d3", rx=8),
    ]
    for cx, cy, rot in ((185, 205, -20), (215, 200, 25), (200, 222, 5)):
        out.append(f'<g transform="rotate({rot} {cx} {cy})">'
                   + ellipse(cx, cy, 11, 15, "#5a3825")
                   + line(cx, cy - 11, cx, cy + 11, "#f3e6d3", 2) + "</g>")
    return out


def torch():
    return [
        rect(170, 170, 60, 110, "#c8553d", rx=14),
        rect(178, 140, 44, 34, "#3b3b3b", rx=6),
        rect(222, 150, 50, 14, "#3b3b3b", rx=5),
        path("M272 157 Q300 130 318 157 Q300 184 272 157 Z", "#f4a259"),
        path("M276 157 Q296 142 306 157 Q296 172 276 157 Z", "#5bc0eb"),
        ellipse(130, 262, 34, 14, "#ffffff"),
        ellipse(130, 256, 30, 9, "#e9c46a"),
    ]


def knife():
    return [
        '<g transform="rotate(-30 200 210)">',
        path("M110 195 L250 195 L250 225 L130 225 Q105 215 110 195 Z", "#dfe4e8"),
        path("M110 195 L250 195 L250 203 L112 203 Z", "#ffffff", opacity="0.6"),
        rect(248, 192, 12, 36, "#9aa5ad", rx=3),
        rect(258, 196, 90, 28, "#6b4226", rx=10),
        circle(285, 210, 3.5, "#dfe4e8"), circle(318, 210, 3.5, "#dfe4e8"),
        "</g>",
    ]


def skillet():
    return [
        ellipse(180, 215, 95, 80, "#2f2f33"),
        ellipse(180, 210, 78, 64, "#45454b"),
        rect(262, 198, 110, 24, "#2f2f33", rx=12),
        circle(356, 210, 5, "#f6ede4"),
        ellipse(165, 205, 30, 22, "#ffffff"),
        circle(165, 205, 13, "#f4b942"),
    ]


def beanie():
    return [
        path("M120 240 Q120 130 200 125 Q280 130 280 240 Z", "#3f7d58"),
        *[line(x, 150 if abs(x - 200) < 50 else 175, x, 238, "#336a4a", 5)
          for x in range(140, 270, 20)],
        rect(110, 232, 180, 42, "#2f6146", rx=14),
        *[line(x, 240, x, 266, "#3f7d58", 4) for x in range(125, 285, 14)],
        circle(200, 115, 24, "#e9c46a"),
    ]


def backpack():
    return [
        rect(135, 120, 130, 165, "#8a6a3b", rx=34),
        path("M165 120 Q165 85 200 85 Q235 85 235 120", "none", stroke="#5a4426",
             stroke_width=10),
        rect(152, 190, 96, 70, "#7a5c31", rx=14),
        rect(152, 190, 96, 24, "#5a4426", rx=10),
        rect(194, 204, 12, 16, "#d4a94f", rx=2),
        rect(160, 140, 80, 30, "#9c7a46", rx=12),
    ]


def socks():
    def sock(dx, body, stripe):
        return [
            path(f"M{155 + dx} 110 L{205 + dx} 110 L{205 + dx} 225 Q{205 + dx} 275 "
                 f"{165 + dx} 275 L{125 + dx} 275 Q{100 + dx} 275 {100 + dx} 252 "
                 f"Q{100 + dx} 232 {125 + dx} 228 L{155 + dx} 222 Z", body),
            rect(155 + dx, 110, 50, 22, stripe, rx=4),
            rect(155 + dx, 140, 50, 8, stripe),
            path(f"M{100 + dx} 252 Q{100 + dx} 275 {125 + dx} 275 L{135 + dx} 275 "
                 f"L{135 + dx} 232 L{125 + dx} 228 Q{100 + dx} 232 {100 + dx} 252 Z",
                 stripe),
        ]
    return sock(-10, "#e76f51", "#2a9d8f") + sock(70, "#2a9d8f", "#e76f51")


def bottle():
    return [
        rect(160, 125, 80, 160, "#2a9d8f", rx=26),
        rect(175, 100, 50, 30, "#264653", rx=8),
        path("M190 100 Q200 78 210 100", "none", stroke="#264653", stroke_width=7),
        rect(160, 170, 80, 36, "#e9f5f2", rx=4),
        rect(175, 140, 10, 120, "#ffffff", rx=5, opacity="0.35"),
    ]


def keyboard():
    keys = []
    for row in range(4):
        for col in range(9):
            keys.append(rect(96 + col * 23, 164 + row * 23, 19, 19,
                             "#f6f7fb" if (row + col) % 7 else "#e76f51", rx=4))
    return [
        rect(80, 150, 240, 112, "#3c5a99", rx=14),
        *keys,
    ]


def lamp():
    return [
        ellipse(170, 282, 60, 12, "#8c6a4a"),
        line(170, 276, 205, 170, "#3b3b3b", 8),
        line(205, 170, 160, 110, "#3b3b3b", 8),
        circle(205, 170, 8, "#3b3b3b"),
        path("M150 95 L230 120 L205 160 L120 130 Z", "#3c5a99"),
        path("M120 130 L205 160 Q190 190 150 175 Q118 160 120 130 Z", "#f9e79f",
             opacity="0.9"),
    ]


def pen():
    return [
        '<g transform="rotate(35 200 200)">',
        rect(185, 70, 30, 150, "#1d3557", rx=12),
        rect(183, 200, 34, 16, "#d4a94f", rx=3),
        path("M187 216 L213 216 L206 262 L200 285 L194 262 Z", "#3c5a99"),
        path("M194 262 L206 262 L200 285 Z", "#d4a94f"),
        rect(212, 86, 7, 70, "#d4a94f", rx=3),
        "</g>",
    ]


def candle():
    return [
        rect(140, 160, 120, 120, "#b5651d", rx=16, opacity="0.85"),
        rect(140, 200, 120, 50, "#f6efe7", rx=4),
        ellipse(200, 160, 60, 12, "#f1e3cf"),
        line(200, 160, 200, 138, "#3b3b3b", 3),
        path("M200 92 Q218 118 208 134 Q200 142 192 134 Q182 118 200 92 Z", "#f4a259"),
        path("M200 110 Q208 124 204 132 Q200 136 196 132 Q192 124 200 110 Z", "#f9e79f"),
    ]


def yoga_mat():
    return [
        path("M110 250 L260 250 L260 210 L110 210 Z", "#8a4f7d"),
        circle(270, 205, 48, "#8a4f7d"),
        circle(270, 205, 34, "#a66b98"),
        circle(270, 205, 20, "#8a4f7d"),
        circle(270, 205, 8, "#6d3c63"),
        rect(110, 210, 150, 10, "#a66b98"),
        line(150, 202, 150, 258, "#f4ecf5", 5),
        line(225, 202, 225, 258, "#f4ecf5", 5),
    ]


def monstera():
    def leaf(cx, cy, rot, r):
        cuts = "".join(
            line(cx, cy, cx + r * dx, cy + r * dy, "#3f8f5a", 4)
            for dx, dy in ((0.9, -0.4), (0.95, 0.2), (0.7, 0.7), (-0.9, -0.4),
                           (-0.95, 0.2), (-0.7, 0.7))
        )
        return (f'<g transform="rotate({rot} {cx} {cy})">'
                + ellipse(cx, cy, r, r * 0.8, "#2d6a4f") + cuts
                + line(cx, cy - r * 0.8, cx, cy + r * 0.8, "#52b788", 3) + "</g>")
    return [
        line(200, 240, 165, 150, "#2d6a4f", 6),
        line(200, 240, 240, 140, "#2d6a4f", 6),
        line(200, 240, 200, 175, "#2d6a4f", 6),
        leaf(150, 135, -25, 46),
        leaf(250, 125, 20, 50),
        leaf(200, 170, 0, 34),
        path("M150 232 L250 232 L238 290 L162 290 Z", "#c8704d"),
        rect(144, 226, 112, 16, "#b5603f", rx=4),
    ]


def parcel(accent):
    return [
        path("M130 160 L200 130 L270 160 L200 190 Z", accent, opacity="0.75"),
        path("M130 160 L200 190 L200 280 L130 250 Z", accent),
        path("M270 160 L200 190 L200 280 L270 250 Z", accent, opacity="0.85"),
        path("M165 145 L235 175 L235 195 L165 165 Z", "#ffffff", opacity="0.5"),
    ]


DRAWINGS = {
    "pour-over-coffee-kettle": kettle,
    "ceramic-coffee-mug": mug,
    "single-origin-beans": beans,
    "creme-brulee-torch": torch,
    "chefs-knife": knife,
    "cast-iron-skillet": skillet,
    "merino-beanie": beanie,
    "waxed-canvas-backpack": backpack,
    "trail-running-socks": socks,
    "insulated-water-bottle": bottle,
    "mechanical-keyboard": keyboard,
    "desk-lamp": lamp,
    "fountain-pen": pen,
    "scented-candle": candle,
    "yoga-mat": yoga_mat,
    "houseplant-monstera": monstera,
}


def key_colour(key):
    """A pleasant, stable colour for a product without its own palette."""
    h = int(hashlib.sha256(key.encode()).hexdigest()[:4], 16) % 360
    return f"hsl({h}, 45%, 50%)"


def svg(key, category):
    background, spot, accent = PALETTES.get(category, DEFAULT_PALETTE)
    draw = DRAWINGS.get(key)
    shapes = draw() if draw else parcel(key_colour(key) if category not in PALETTES else accent)
    body = [
        rect(0, 0, 400, 400, background),
        circle(200, 195, 150, spot),
        ellipse(200, 300, 120, 14, "#000000", opacity="0.08"),
        *shapes,
    ]
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 400" '
        'width="400" height="400" role="img">\n  '
        + "\n  ".join(body)
        + "\n</svg>\n"
    )


def expected_files():
    catalog = json.loads(CATALOG.read_text(encoding="utf-8"))
    files = {}
    for product in catalog:
        key = product["key"]
        want = f"/assets/products/{key}.svg"
        if product.get("image_url") != want:
            sys.exit(f"{CATALOG}: {key} should have image_url {want!r}")
        files[f"{key}.svg"] = svg(key, product.get("category", "general"))
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if regenerating would change the files")
    args = parser.parse_args()
    files = expected_files()
    present = {p.name for p in OUT_DIR.glob("*.svg")} if OUT_DIR.is_dir() else set()
    differ = sorted(
        name for name, text in files.items()
        if name not in present or (OUT_DIR / name).read_text(encoding="utf-8") != text
    )
    stale = sorted(present - files.keys())
    if args.check:
        for name in differ:
            print(f"out of date: {OUT_DIR / name}")
        for name in stale:
            print(f"not in the catalog: {OUT_DIR / name}")
        if differ or stale:
            print("run python3 storefront/tools/product_art.py to regenerate", file=sys.stderr)
            return 1
        print(f"{len(files)} product images are up to date")
        return 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name in differ:
        (OUT_DIR / name).write_text(files[name], encoding="utf-8")
    for name in stale:
        (OUT_DIR / name).unlink()
    print(f"{len(files)} product images: {len(differ)} written, {len(stale)} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
