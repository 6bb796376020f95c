#!/usr/bin/env bash
# The main job, offline, on CPU: the default model on a street photo (predict → postprocess →
# visualize), then the bundled example scenes: clean up predictions → gate them against
# ground truth → look at them → convert to COCO and back → tile a frame and stitch it back.
# Sets up .venv on first use. Results go to out/demo/ (override: OUT=dir bash examples/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv/bin/segtools ]]; then
    python3 -m venv .venv && . .venv/bin/activate && pip install -q torch==2.13.0 && pip install -q -e '.[models]'
fi
. .venv/bin/activate
DATA=examples/data
OUT=${OUT:-out/demo}
mkdir -p "$OUT"
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

# The default model (LR-ASPP MobileNetV3 trained on CamVid, bundled): on your photo
# (`bash examples/demo.sh street.jpg`), else on a CamVid frame from ../shared when present.
PHOTO=${1:-}
if [[ -z "$PHOTO" && -d ../shared/data/camvid/val ]]; then
    frames=(../shared/data/camvid/val/*.png)  # a glob, not `ls | head`: under pipefail head's early exit killed ls (141)
    PHOTO=${frames[0]}
fi
if [[ -n "$PHOTO" ]]; then
    say "predict -> postprocess -> visualize on $PHOTO with the bundled default model (offline, CPU)"
    segtools predict "$PHOTO" | segtools postprocess --min-area 32 \
        | segtools visualize --over "$PHOTO" --legend -o "$OUT/street.png"
    echo "wrote $OUT/street.png" >&2
else
    say "no photo given (bash examples/demo.sh PHOTO) and no ../shared/data: skipping the model stage"
fi

say "what is in a mask"
segtools info "$DATA/masks/street_00.png"

say "raw predictions against ground truth (CamVid classes, void = 11)"
segtools metrics "$DATA/preds" "$DATA/masks" --classes camvid -f json > "$OUT/raw.json"
segtools metrics "$DATA/preds" "$DATA/masks" --classes camvid

say "clean the predictions: opening, drop specks under 64 px, fill small holes"
segtools postprocess "$DATA/preds" -o "$OUT/clean" --open 3 --min-area 64 --fill-holes 64 --jobs 2

say "quality gate on the cleaned predictions (exit 1 if mIoU < 0.70 or dropped vs raw)"
segtools metrics "$OUT/clean" "$DATA/masks" --classes camvid -f json \
    --fail-under miou=0.70 --baseline "$OUT/raw.json" --max-drop 0 > "$OUT/clean.json"
python3 -c "import json,sys; a,b=(json.load(open(f)) for f in sys.argv[1:]); print(f'mIoU raw {a[\"miou\"]:.3f} -> cleaned {b[\"miou\"]:.3f}')" "$OUT/raw.json" "$OUT/clean.json"

say "pictures: a pipe, a comparison panel, a confusion matrix, an HTML report"
segtools postprocess --min-area 64 < "$DATA/preds/street_00.png" \
    | segtools visualize --over "$DATA/images/street_00.png" --legend -o "$OUT/overlay.png"
segtools visualize "$OUT/clean/street_00.png" --gt "$DATA/masks/street_00.png" \
    --over "$DATA/images/street_00.png" --panel -o "$OUT/panel.png"
segtools visualize confusion "$OUT/clean.json" -o "$OUT/confusion.png"
segtools visualize "$OUT/clean" --gt "$DATA/masks" --over "$DATA/images" --report -o "$OUT/report.html"

say "masks -> COCO JSON (RLE) -> masks, exactly"
segtools convert "$DATA/masks" --to coco --images "$DATA/images" -o "$OUT/coco.json"
segtools convert "$OUT/coco.json" --to mask -o "$OUT/from_coco"

say "tile a frame into 256 px tiles with 32 px overlap, stitch it back"
segtools tile split "$DATA/images/street_01.png" --size 256 --overlap 32 -o "$OUT/tiles"
segtools tile merge "$OUT/tiles" -o "$OUT/stitched.png"
python3 - "$OUT/stitched.png" "$DATA/images/street_01.png" <<'PY'
import sys
import numpy as np
from segtools.io import read_image
same = np.array_equal(read_image(sys.argv[1]), read_image(sys.argv[2]))
print("stitched frame is pixel-identical to the original" if same else "stitched frame DIFFERS", file=sys.stderr)
sys.exit(0 if same else 1)
PY

say "done: see $OUT/ (overlay.png, panel.png, confusion.png, report.html, coco.json)"
