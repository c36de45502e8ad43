"""The onnx engine's profiles: which bundled PP-OCR models run (``PAGEMILL_OCR_PROFILE``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.errors import EngineUnavailableError
from pipeline.ocr import _ppocr

DET_LIMIT_SIDE = 1280  # px: longest page side fed to the detector (memory and time grow with its square)


@dataclass(frozen=True, slots=True)
class Profile:
    """Which bundled models run, as paths inside the wheel's ``models`` directory.

    ``rec_dict`` None means the recogniser's characters are in its ONNX metadata. A profile with
    ``recheck_rec`` is a cascade: every line is read by ``rec`` first; in the lines it reads with
    a mean character confidence below ``recheck_below``, the words it read below that are read
    again by ``recheck_rec``, whose reading replaces the first (``pipeline.ocr.cascade``). The
    fast reader does the bulk, the accurate one the hard words (diacritics, worn type, small
    print), at a fraction of its cost.
    """

    det: str
    rec: str
    rec_dict: str | None
    cls: str = "ppocrv5/cls/cls.onnx"
    det_params: _ppocr.DetParams = field(default_factory=_ppocr.DetParams)
    det_limit_side: int = DET_LIMIT_SIDE
    recheck_rec: str | None = None
    recheck_dict: str | None = None
    recheck_below: float = 0.0


_V5_DET = "ppocrv5/det/det.onnx"
_V6_TINY_DET = "ppocrv6/tiny/det/det.onnx"
_V6_TINY_REC, _V6_TINY_DICT = "ppocrv6/tiny/rec/rec.onnx", "ppocrv6/ppocrv6_tiny_dict.txt"
_V6_SMALL_REC, _V6_SMALL_DICT = "ppocrv6/small/rec/rec.onnx", "ppocrv6/ppocrv6_dict.txt"
# PP-OCRv6 tiny det's published DB thresholds (its inference.yml): lower than v5's, since its
# probability maps are softer; with v5's 0.3/0.6 it drops faint and small words.
_V6_DET_PARAMS = _ppocr.DetParams(bin_thresh=0.2, box_thresh=0.4, unclip_ratio=1.4)

PROFILES: dict[str, Profile] = {
    # PP-OCRv5 mobile det + PP-OCRv6 small rec: v6's dictionary has every French and German
    # letter (v5's lacks î ï œ ÿ and reads ä ö ü ß as a o u B); v5 det keeps magazine columns
    # apart where v6 small det merges lines across the gutter.
    "accurate": Profile(det=_V5_DET, rec=_V6_SMALL_REC, rec_dict=_V6_SMALL_DICT),
    # PP-OCRv6 tiny det + rec: ~3.5x less CPU per page than "accurate"; reads l as 1 on worn
    # typewriter type and drops some î œ û; its dictionary has no kana (no Japanese).
    "fast": Profile(det=_V6_TINY_DET, rec=_V6_TINY_REC, rec_dict=_V6_TINY_DICT, det_params=_V6_DET_PARAMS),
    # The fast models, then PP-OCRv6 small rec on the lines tiny rec is unsure of. Tiny rec's
    # mistakes (l read as 1 on typewriter scans, î ï œ û dropped or doubled) sit in lines it
    # reads at a mean confidence of 0.93-0.98; below 0.98 re-reads ~45% of the text on the
    # dense fixtures and matches "accurate"'s CER there (0.95 re-read 2%: no better than
    # "fast"; 0.99 re-read 77% for no further gain). benchmarks/results/ENGINE_NOTES.md.
    "cascade": Profile(
        det=_V6_TINY_DET,
        rec=_V6_TINY_REC,
        rec_dict=_V6_TINY_DICT,
        det_params=_V6_DET_PARAMS,
        recheck_rec=_V6_SMALL_REC,
        recheck_dict=_V6_SMALL_DICT,
        recheck_below=0.98,
    ),
    # Before PP-OCRv6 (pagemill <= 0.1): PP-OCRv5 mobile det + rec. For comparison and Japanese
    # documents read as before.
    "v5": Profile(det=_V5_DET, rec="ppocrv5/rec/rec.onnx", rec_dict="ppocrv5/ppocrv5_dict.txt"),
}


def _profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise EngineUnavailableError(
            f"unknown OCR profile {profile!r} (PAGEMILL_OCR_PROFILE); use one of {', '.join(PROFILES)}"
        ) from None
