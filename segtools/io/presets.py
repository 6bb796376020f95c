"""Built-in dataset presets: class names, colour palettes and ignore indices.

Pure data plus a few tiny helpers. Only the standard library is imported, so
this module loads in well under 5 ms (the CLI imports it for ``--preset``).

Index convention: ``preset.names[i]`` and ``preset.palette[i]`` describe class
index ``i`` as it appears in a label map; ``preset.ignore_index`` is the label
value that metrics skip (it has no entry in ``names``/``palette``).

Sources (the data is re-typed here in our own layout):

* VOC: the Pascal VOC development kit's bit-interleaving colour map
  (:func:`voc_colormap`); VOC draws the ignore value 255 as (224, 224, 192).
* Cityscapes: ``cityscapesScripts/helpers/labels.py`` (labelIds 0..33 and
  license plate); the preset uses the 19 trainId classes.
* CamVid: the 11-class SegNet split, with 11 = Unlabelled as ignore index (drawn black);
  ``camvid32``: the full 32-entry ``label_colors.txt`` in file order, Void (30) ignored.
* Void colours (:attr:`Preset.void_colours`): what each dataset draws unlabelled pixels
  with — VOC (224, 224, 192), CamVid black, Cityscapes every colour of a labelId without
  a trainId (black, ground (81, 0, 81), parking, …) — read as the ignore index.
* ADE20K: the 150 SceneParsing classes in the order and with the palette of the
  CSAIL scene-parsing repo / mmsegmentation's ``ADE20KDataset``. Labels are
  assumed to be "reduce-zero-label" encoded: 0 ("other") becomes 255 and class
  ``k`` (1..150) becomes ``k - 1``. NB the upstream palette gives *road* (6)
  and *skyscraper* (48) the same colour (140, 140, 140); it is kept as is so
  colour-encoded masks from other tools still decode the same way.
* COCO: the 80 instance categories, with their original (gappy) category ids
  in :data:`COCO_CATEGORY_IDS`. Colours are VOC colour-map entries 1..80 (all
  distinct, and class ``i`` gets VOC colour ``i + 1``).
"""

from __future__ import annotations

from collections import namedtuple  # free: dataclasses imports collections
from dataclasses import dataclass

__all__ = [
    "ADE20K_CLASSES",
    "CAMVID_UNLABELLED_COLOR",
    "CITYSCAPES_LABELS",
    "COCO_CATEGORY_IDS",
    "COCO_CLASSES",
    "PRESETS",
    "VOC_CLASSES",
    "VOC_IGNORE_COLOR",
    "CityscapesLabel",
    "Preset",
    "cityscapes_id_to_train_id",
    "cityscapes_train_id_to_id",
    "get_preset",
    "voc_colormap",
]

Color = tuple[int, int, int]


@dataclass(frozen=True)
class Preset:
    """Class names and colours of one dataset (index ``i`` -> ``names[i]``)."""

    name: str
    names: tuple[str, ...]
    palette: tuple[Color, ...]
    ignore_index: int
    kind: str = "semantic"
    #: colours the dataset draws its void/unlabelled pixels with (read as ``ignore_index``)
    void_colours: tuple[Color, ...] = ()

    def __post_init__(self) -> None:
        if len(self.names) != len(self.palette):
            raise ValueError(
                f"preset {self.name!r}: {len(self.names)} names but "
                f"{len(self.palette)} palette colours"
            )

    @property
    def num_classes(self) -> int:
        return len(self.names)


# --------------------------------------------------------------------------- VOC


def voc_colormap(n: int = 256) -> list[Color]:
    """The Pascal VOC colour map: entry ``i`` spreads the bits of ``i`` over RGB.

    Bit ``3*j + c`` of the index (c = 0 red, 1 green, 2 blue) sets bit ``7 - j``
    of channel ``c``, so 1 -> (128, 0, 0), 2 -> (0, 128, 0), 255 -> (224, 224, 192).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    cmap: list[Color] = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            shift = 7 - j
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
            if not c:
                break
        cmap.append((r, g, b))
    return cmap


VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

_VOC_CMAP = voc_colormap(256)
#: Colour VOC uses to draw the ignore value 255 (object borders / "difficult").
VOC_IGNORE_COLOR: Color = _VOC_CMAP[255]

# ------------------------------------------------------------------- Cityscapes


#: One row of cityscapesScripts' label table; a plain tuple, so it unpacks as
#: ``name, id, train_id, category, color = row`` (``train_id`` 255 = ignored).
CityscapesLabel = namedtuple("CityscapesLabel", "name id train_id category color")


#: All labelIds 0..33 plus license plate (-1). Upstream gives license plate
#: trainId -1; it is stored as 255 (ignored) here.
CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = (
    CityscapesLabel("unlabeled", 0, 255, "void", (0, 0, 0)),
    CityscapesLabel("ego vehicle", 1, 255, "void", (0, 0, 0)),
    CityscapesLabel("rectification border", 2, 255, "void", (0, 0, 0)),
    CityscapesLabel("out of roi", 3, 255, "void", (0, 0, 0)),
    CityscapesLabel("static", 4, 255, "void", (0, 0, 0)),
    CityscapesLabel("dynamic", 5, 255, "void", (111, 74, 0)),
    CityscapesLabel("ground", 6, 255, "void", (81, 0, 81)),
    CityscapesLabel("road", 7, 0, "flat", (128, 64, 128)),
    CityscapesLabel("sidewalk", 8, 1, "flat", (244, 35, 232)),
    CityscapesLabel("parking", 9, 255, "flat", (250, 170, 160)),
    CityscapesLabel("rail track", 10, 255, "flat", (230, 150, 140)),
    CityscapesLabel("building", 11, 2, "construction", (70, 70, 70)),
    CityscapesLabel("wall", 12, 3, "construction", (102, 102, 156)),
    CityscapesLabel("fence", 13, 4, "construction", (190, 153, 153)),
    CityscapesLabel("guard rail", 14, 255, "construction", (180, 165, 180)),
    CityscapesLabel("bridge", 15, 255, "construction", (150, 100, 100)),
    CityscapesLabel("tunnel", 16, 255, "construction", (150, 120, 90)),
    CityscapesLabel("pole", 17, 5, "object", (153, 153, 153)),
    CityscapesLabel("polegroup", 18, 255, "object", (153, 153, 153)),
    CityscapesLabel("traffic light", 19, 6, "object", (250, 170, 30)),
    CityscapesLabel("traffic sign", 20, 7, "object", (220, 220, 0)),
    CityscapesLabel("vegetation", 21, 8, "nature", (107, 142, 35)),
    CityscapesLabel("terrain", 22, 9, "nature", (152, 251, 152)),
    CityscapesLabel("sky", 23, 10, "sky", (70, 130, 180)),
    CityscapesLabel("person", 24, 11, "human", (220, 20, 60)),
    CityscapesLabel("rider", 25, 12, "human", (255, 0, 0)),
    CityscapesLabel("car", 26, 13, "vehicle", (0, 0, 142)),
    CityscapesLabel("truck", 27, 14, "vehicle", (0, 0, 70)),
    CityscapesLabel("bus", 28, 15, "vehicle", (0, 60, 100)),
    CityscapesLabel("caravan", 29, 255, "vehicle", (0, 0, 90)),
    CityscapesLabel("trailer", 30, 255, "vehicle", (0, 0, 110)),
    CityscapesLabel("train", 31, 16, "vehicle", (0, 80, 100)),
    CityscapesLabel("motorcycle", 32, 17, "vehicle", (0, 0, 230)),
    CityscapesLabel("bicycle", 33, 18, "vehicle", (119, 11, 32)),
    CityscapesLabel("license plate", -1, 255, "vehicle", (0, 0, 142)),
)


def cityscapes_id_to_train_id() -> dict[int, int]:
    """labelId (0..33) -> trainId (0..18, or 255 for ignored labels).

    License plate (id -1) is left out: it never appears in a labelIds image.
    """
    return {lab.id: lab.train_id for lab in CITYSCAPES_LABELS if lab.id >= 0}


def cityscapes_train_id_to_id() -> dict[int, int]:
    """trainId (0..18) -> labelId. 255 is not a key: it has many labelIds."""
    return {lab.train_id: lab.id for lab in CITYSCAPES_LABELS if lab.train_id != 255}


def _cityscapes_train_labels() -> list[CityscapesLabel]:
    return sorted(
        (lab for lab in CITYSCAPES_LABELS if lab.train_id != 255), key=lambda lab: lab.train_id
    )


# ----------------------------------------------------------------------- CamVid

# SegNet's 11-class CamVid; label value 11 (Unlabelled, drawn black) is ignored.
_CAMVID: tuple[tuple[str, Color], ...] = (
    ("Sky", (128, 128, 128)),
    ("Building", (128, 0, 0)),
    ("Pole", (192, 192, 128)),
    ("Road", (128, 64, 128)),
    ("Pavement", (60, 40, 222)),
    ("Tree", (128, 128, 0)),
    ("SignSymbol", (192, 128, 128)),
    ("Fence", (64, 64, 128)),
    ("Car", (64, 0, 128)),
    ("Pedestrian", (64, 64, 0)),
    ("Bicyclist", (0, 128, 192)),
)
CAMVID_UNLABELLED_COLOR: Color = (0, 0, 0)

# CamVid's full colour table (``label_colors.txt`` of the original release), in file order:
# label value = line number, so Void is 30 (the ignore index) and Wall 31.
_CAMVID32: tuple[tuple[str, Color], ...] = (
    ("Animal", (64, 128, 64)), ("Archway", (192, 0, 128)), ("Bicyclist", (0, 128, 192)),
    ("Bridge", (0, 128, 64)), ("Building", (128, 0, 0)), ("Car", (64, 0, 128)),
    ("CartLuggagePram", (64, 0, 192)), ("Child", (192, 128, 64)), ("Column_Pole", (192, 192, 128)),
    ("Fence", (64, 64, 128)), ("LaneMkgsDriv", (128, 0, 192)), ("LaneMkgsNonDriv", (192, 0, 64)),
    ("Misc_Text", (128, 128, 64)), ("MotorcycleScooter", (192, 0, 192)), ("OtherMoving", (128, 64, 64)),
    ("ParkingBlock", (64, 192, 128)), ("Pedestrian", (64, 64, 0)), ("Road", (128, 64, 128)),
    ("RoadShoulder", (128, 128, 192)), ("Sidewalk", (0, 0, 192)), ("SignSymbol", (192, 128, 128)),
    ("Sky", (128, 128, 128)), ("SUVPickupTruck", (64, 128, 192)), ("TrafficCone", (0, 0, 64)),
    ("TrafficLight", (0, 64, 64)), ("Train", (192, 64, 128)), ("Tree", (128, 128, 0)),
    ("Truck_Bus", (192, 128, 192)), ("Tunnel", (64, 0, 64)), ("VegetationMisc", (192, 192, 0)),
    ("Void", (0, 0, 0)), ("Wall", (64, 192, 0)),
)

# ----------------------------------------------------------------------- ADE20K

# The 150 SceneParsing classes (after reduce-zero-label), the number is the index
# of the first class on each line.
_ADE20K: tuple[tuple[str, Color], ...] = (
    ("wall", (120, 120, 120)), ("building", (180, 120, 120)), ("sky", (6, 230, 230)),  # 0
    ("floor", (80, 50, 50)), ("tree", (4, 200, 3)), ("ceiling", (120, 120, 80)),  # 3
    ("road", (140, 140, 140)), ("bed", (204, 5, 255)), ("windowpane", (230, 230, 230)),  # 6
    ("grass", (4, 250, 7)), ("cabinet", (224, 5, 255)), ("sidewalk", (235, 255, 7)),  # 9
    ("person", (150, 5, 61)), ("earth", (120, 120, 70)), ("door", (8, 255, 51)),  # 12
    ("table", (255, 6, 82)), ("mountain", (143, 255, 140)), ("plant", (204, 255, 4)),  # 15
    ("curtain", (255, 51, 7)), ("chair", (204, 70, 3)), ("car", (0, 102, 200)),  # 18
    ("water", (61, 230, 250)), ("painting", (255, 6, 51)), ("sofa", (11, 102, 255)),  # 21
    ("shelf", (255, 7, 71)), ("house", (255, 9, 224)), ("sea", (9, 7, 230)),  # 24
    ("mirror", (220, 220, 220)), ("rug", (255, 9, 92)), ("field", (112, 9, 255)),  # 27
    ("armchair", (8, 255, 214)), ("seat", (7, 255, 224)), ("fence", (255, 184, 6)),  # 30
    ("desk", (10, 255, 71)), ("rock", (255, 41, 10)), ("wardrobe", (7, 255, 255)),  # 33
    ("lamp", (224, 255, 8)), ("bathtub", (102, 8, 255)), ("railing", (255, 61, 6)),  # 36
    ("cushion", (255, 194, 7)), ("base", (255, 122, 8)), ("box", (0, 255, 20)),  # 39
    ("column", (255, 8, 41)), ("signboard", (255, 5, 153)),  # 42
    ("chest of drawers", (6, 51, 255)), ("counter", (235, 12, 255)),  # 44
    ("sand", (160, 150, 20)), ("sink", (0, 163, 255)), ("skyscraper", (140, 140, 140)),  # 46
    ("fireplace", (250, 10, 15)), ("refrigerator", (20, 255, 0)),  # 49
    ("grandstand", (31, 255, 0)), ("path", (255, 31, 0)), ("stairs", (255, 224, 0)),  # 51
    ("runway", (153, 255, 0)), ("case", (0, 0, 255)), ("pool table", (255, 71, 0)),  # 54
    ("pillow", (0, 235, 255)), ("screen door", (0, 173, 255)), ("stairway", (31, 0, 255)),  # 57
    ("river", (11, 200, 200)), ("bridge", (255, 82, 0)), ("bookcase", (0, 255, 245)),  # 60
    ("blind", (0, 61, 255)), ("coffee table", (0, 255, 112)), ("toilet", (0, 255, 133)),  # 63
    ("flower", (255, 0, 0)), ("book", (255, 163, 0)), ("hill", (255, 102, 0)),  # 66
    ("bench", (194, 255, 0)), ("countertop", (0, 143, 255)), ("stove", (51, 255, 0)),  # 69
    ("palm", (0, 82, 255)), ("kitchen island", (0, 255, 41)), ("computer", (0, 255, 173)),  # 72
    ("swivel chair", (10, 0, 255)), ("boat", (173, 255, 0)), ("bar", (0, 255, 153)),  # 75
    ("arcade machine", (255, 92, 0)), ("hovel", (255, 0, 255)), ("bus", (255, 0, 245)),  # 78
    ("towel", (255, 0, 102)), ("light", (255, 173, 0)), ("truck", (255, 0, 20)),  # 81
    ("tower", (255, 184, 184)), ("chandelier", (0, 31, 255)), ("awning", (0, 255, 61)),  # 84
    ("streetlight", (0, 71, 255)), ("booth", (255, 0, 204)),  # 87
    ("television receiver", (0, 255, 194)), ("airplane", (0, 255, 82)),  # 89
    ("dirt track", (0, 10, 255)), ("apparel", (0, 112, 255)), ("pole", (51, 0, 255)),  # 91
    ("land", (0, 194, 255)), ("bannister", (0, 122, 255)), ("escalator", (0, 255, 163)),  # 94
    ("ottoman", (255, 153, 0)), ("bottle", (0, 255, 10)), ("buffet", (255, 112, 0)),  # 97
    ("poster", (143, 255, 0)), ("stage", (82, 0, 255)), ("van", (163, 255, 0)),  # 100
    ("ship", (255, 235, 0)), ("fountain", (8, 184, 170)), ("conveyer belt", (133, 0, 255)),  # 103
    ("canopy", (0, 255, 92)), ("washer", (184, 0, 255)), ("plaything", (255, 0, 31)),  # 106
    ("swimming pool", (0, 184, 255)), ("stool", (0, 214, 255)), ("barrel", (255, 0, 112)),  # 109
    ("basket", (92, 255, 0)), ("waterfall", (0, 224, 255)), ("tent", (112, 224, 255)),  # 112
    ("bag", (70, 184, 160)), ("minibike", (163, 0, 255)), ("cradle", (153, 0, 255)),  # 115
    ("oven", (71, 255, 0)), ("ball", (255, 0, 163)), ("food", (255, 204, 0)),  # 118
    ("step", (255, 0, 143)), ("tank", (0, 255, 235)), ("trade name", (133, 255, 0)),  # 121
    ("microwave", (255, 0, 235)), ("pot", (245, 0, 255)), ("animal", (255, 0, 122)),  # 124
    ("bicycle", (255, 245, 0)), ("lake", (10, 190, 212)), ("dishwasher", (214, 255, 0)),  # 127
    ("screen", (0, 204, 255)), ("blanket", (20, 0, 255)), ("sculpture", (255, 255, 0)),  # 130
    ("hood", (0, 153, 255)), ("sconce", (0, 41, 255)), ("vase", (0, 255, 204)),  # 133
    ("traffic light", (41, 0, 255)), ("tray", (41, 255, 0)), ("ashcan", (173, 0, 255)),  # 136
    ("fan", (0, 245, 255)), ("pier", (71, 0, 255)), ("crt screen", (122, 0, 255)),  # 139
    ("plate", (0, 255, 184)), ("monitor", (0, 92, 255)), ("bulletin board", (184, 255, 0)),  # 142
    ("shower", (0, 133, 255)), ("radiator", (255, 214, 0)), ("glass", (25, 194, 194)),  # 145
    ("clock", (102, 255, 0)), ("flag", (92, 0, 255)),  # 148
)
ADE20K_CLASSES: tuple[str, ...] = tuple(n for n, _ in _ADE20K)

# ------------------------------------------------------------------------- COCO

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)  # fmt: skip

#: Original COCO category id of ``COCO_CLASSES[i]`` (1..90, with gaps).
COCO_CATEGORY_IDS: tuple[int, ...] = (
    *range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66), 67, 70,
    *range(72, 83), *range(84, 91),
)  # fmt: skip

# ---------------------------------------------------------------------- presets

def _cityscapes_void_colours() -> tuple[Color, ...]:
    """Colours of the labelIds without a trainId that no train class shares (what a real
    ``_color.png`` holds besides the 19 classes: unlabeled black, ground, parking, …)."""
    train = {lab.color for lab in _cityscapes_train_labels()}
    out: list[Color] = []
    for lab in CITYSCAPES_LABELS:
        if lab.train_id == 255 and lab.color not in train and lab.color not in out:
            out.append(lab.color)
    return tuple(out)


PRESETS: dict[str, Preset] = {
    "voc": Preset("voc", VOC_CLASSES, tuple(_VOC_CMAP[: len(VOC_CLASSES)]), 255,
                  void_colours=(VOC_IGNORE_COLOR,)),
    "cityscapes": Preset(
        "cityscapes",
        tuple(lab.name for lab in _cityscapes_train_labels()),
        tuple(lab.color for lab in _cityscapes_train_labels()),
        255,
        void_colours=_cityscapes_void_colours(),
    ),
    "camvid": Preset(
        "camvid", tuple(n for n, _ in _CAMVID), tuple(c for _, c in _CAMVID), len(_CAMVID),
        void_colours=(CAMVID_UNLABELLED_COLOR,),
    ),
    "camvid32": Preset(
        "camvid32", tuple(n for n, _ in _CAMVID32), tuple(c for _, c in _CAMVID32),
        [n for n, _ in _CAMVID32].index("Void"),
    ),
    "ade20k": Preset("ade20k", ADE20K_CLASSES, tuple(c for _, c in _ADE20K), 255),
    # kind stays "semantic": label value i means class COCO_CLASSES[i] (not an instance id).
    "coco": Preset("coco", COCO_CLASSES, tuple(_VOC_CMAP[1 : len(COCO_CLASSES) + 1]), 255),
}


def void_colours_of(palette) -> tuple[Color, ...]:
    """The void colours of the preset whose palette is ``palette`` (none for other palettes)."""
    key = tuple(tuple(int(v) for v in c) for c in palette)
    for preset in PRESETS.values():
        if preset.void_colours and preset.palette == key:
            return preset.void_colours
    return ()


def get_preset(name: str) -> Preset:
    """Look a preset up by name, ignoring case and surrounding whitespace."""
    try:
        return PRESETS[name.strip().lower()]
    except (KeyError, AttributeError):
        valid = ", ".join(sorted(PRESETS))
        raise KeyError(f"unknown preset {name!r}; valid presets: {valid}") from None
