"""The ``"sections"`` layout: one stack saved as a file per section, with a folder of binary masks per structure.

The layout of the ssTEM VNC data (Gerhard et al. 2013, ``drosophila_vnc_sstem/stack1``)::

    stack1/raw/00.tif ... 14.tif          sections (grey), paired with the masks by the number in their names
    stack1/membranes/00.png ...           one folder of binary masks per structure, read as ``> 0``
    stack1/mitochondria/00.png ...        (their PNG modes differ: bool, or uint8 with stray values)
    stack1/synapses/00.png ...
    stack1/labels/labels00000000.png ...  the merged multi-class map (not read: the mask folders say the same)

``data.images`` may name the stack folder (the one holding ``raw/``) or a dataset root with exactly one
such folder below it.

Targets:

* membranes (``kind="instances", style="membrane"``): class 0 membrane (``membranes/``), 1 interior. On
  the VNC stack ``membranes/`` is exactly the label map's membrane values (0/32/64/96/128), glia /
  extracellular space (159) and the synapse pixels that lie on membrane (67 % of the 223s), so glia counts
  as membrane. The instances (weight map, validation cells,
  ground truth of 3D scores) are the neurons of :func:`neuron_labels`: the connected interiors of each
  section, linked across sections by overlap. 3D connected components of the interior do NOT work on this
  data: at 50 nm sections the membranes of neighbouring sections rarely overlap, and the 6-connected
  interior of the 15 sections is 18 components, one of them 99.85 % of the interior.
* semantic (``kind="semantic"``, e.g. ``background, membrane, mitochondria, synapse``): class 0 where no
  mask is set, class k from the mask folder named after class k's name (plural or singular:
  ``membrane`` -> ``membranes/``); later classes win where masks overlap (on the VNC stack synapse over
  membrane on 69,105 pixels, mitochondria over membrane on 414 of 15.7 M).

Model inputs: a 3D model gets the stack as one sample ``(C, Z, Y, X)``; a 2D model one sample per section,
named by its file stem (``"07"``). With ``z_context = k`` (2.5D, 2D models only) section z's image is
sections ``z - k .. z + k`` as ``(2k + 1) C`` channels, section-major (channel ``j C + c`` is channel c of
section ``z - k + j``), mirrored at the ends by reflection about the end section (``np.pad(mode="reflect")``:
section -1 is section 1), as :mod:`biounet.inference.sections` builds them when predicting. Intensities are
normalised with the statistics of the whole stack, as for any stack.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from biounet.data.finite import checked_image
from biounet.data.normalization import NormalizationConfig, normalize
from biounet.data.pairing import file_stem, index_by_stem, trailing_number
from biounet.data.readers import Sample, TrainingData, list_images, read_image_file
from biounet.data.targets import Target, TargetConfig
from biounet.errors import DataError
from biounet.io.images import read_image
from biounet.metrics.segmentation import link_sections as link_section_labels

#: The class names of the VNC semantic target (:data:`biounet.training.recipes.PRESETS` ``"vnc-classes"``).
VNC_CLASSES = ("background", "membrane", "mitochondria", "synapse")

#: Two sections' interiors are one neuron when each is the other's largest overlap and the overlap covers at
#: least this share of the smaller one (see :func:`link_sections`).
MIN_OVERLAP = 0.5


def find_stack(path: str | os.PathLike) -> Path:
    """The stack folder (the one holding ``raw/``): ``path`` itself or its one sub-folder with ``raw/``."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: no such stack folder")
    if (root / "raw").is_dir():
        return root
    stacks = sorted(p for p in root.iterdir() if (p / "raw").is_dir())
    if len(stacks) != 1:
        found = ", ".join(p.name for p in stacks) if stacks else "none"
        raise DataError(f"{root}: expected a stack folder with raw/ here or in exactly one sub-folder (found {found})")
    return stacks[0]


def section_numbers(stack_dir: Path) -> dict[int, Path]:
    """``{number: raw file}`` of the stack's sections, in number order."""
    files = index_by_stem(list_images(stack_dir / "raw"), file_stem)
    numbers: dict[int, Path] = {}
    for stem, path in files.items():
        number = trailing_number(stem)
        if number is None or number in numbers:
            raise DataError(f"{path}: section file names must end in a unique section number")
        numbers[number] = path
    return dict(sorted(numbers.items()))


def _select(stack_dir: Path, sections: Sequence[int] | None) -> dict[int, Path]:
    numbers = section_numbers(stack_dir)
    if sections is None:
        return numbers
    missing = [int(n) for n in sections if int(n) not in numbers]
    if missing:
        raise DataError(f"{stack_dir / 'raw'}: no section number {missing[0]}")
    return {int(n): numbers[int(n)] for n in sections}


def mask_folder(stack_dir: Path, name: str) -> Path:
    """The mask folder of structure ``name`` (``membrane`` -> ``membranes/``, or ``membrane/``)."""
    base = name.strip().replace(" ", "_")
    for candidate in (base, base + "s", base.removesuffix("s")):
        if candidate and (stack_dir / candidate).is_dir():
            return stack_dir / candidate
    raise DataError(f"{stack_dir / (base + 's')}: no such mask folder (class {name!r} needs {base}s/ or {base}/)")


def read_masks(folder: Path, sections: dict[int, Path], shape: tuple[int, int]) -> np.ndarray:
    """The binary masks of ``sections`` from ``folder`` as ``(Z, Y, X)`` bool, read as ``> 0``."""
    by_number = {}
    for path in list_images(folder, "mask"):
        number = trailing_number(file_stem(path))
        if number is not None:
            by_number[number] = path
    out = np.zeros((len(sections), *shape), dtype=bool)
    for z, number in enumerate(sections):
        if number not in by_number:
            raise DataError(f"{folder}: no mask for section {number} ({sections[number].name})")
        mask = read_image(by_number[number])
        mask = mask[..., 0] if mask.ndim == 3 else mask
        if mask.shape != shape:
            raise DataError(f"{by_number[number]}: mask of shape {mask.shape}, the sections are {shape}")
        out[z] = mask > 0
    return out


def read_raw(stack_dir: Path, sections: dict[int, Path], nan_policy: str = "refuse") -> np.ndarray:
    """The sections as one ``(C, Z, Y, X)`` stack (grey sections: C = 1; channels last in the files)."""
    images = []
    for path in sections.values():
        image = checked_image(read_image_file(path), str(path), nan_policy)
        image = image[np.newaxis] if image.ndim == 2 else np.moveaxis(image, -1, 0)
        if images and image.shape != images[0].shape:
            raise DataError(f"{path}: section of shape {image.shape[1:]} (C={image.shape[0]}), "
                            f"the first section is {images[0].shape[1:]} (C={images[0].shape[0]})")
        images.append(image)
    return np.stack(images, axis=1)


def link_sections(interior: np.ndarray, min_overlap: float = MIN_OVERLAP) -> np.ndarray:
    """Neurons ``(Z, Y, X)`` int32 (0 = membrane) from an interior mask ``(Z, Y, X)`` bool.

    Each section's interior is split into its 2D connected components (4-connectivity), linked across
    sections by mutual largest overlap (:func:`biounet.metrics.segmentation.link_sections`). Mutual best
    matches keep a branch or a gap in one section's membrane from chaining many neurons together (what 3D
    components do here: at 50 nm a section, membranes of neighbouring sections rarely overlap).
    """
    sections = np.stack([ndi.label(section)[0] for section in interior])
    return link_section_labels(sections, min_overlap)


def neuron_labels(stack: str | os.PathLike, sections: Sequence[int] | None = None) -> np.ndarray:
    """The neurons of ``sections`` (numbers; ``None``: all) as ``(Z, Y, X)`` int32, 0 = membrane.

    ``stack``: the stack folder or the dataset root. Linking uses only the sections asked for, so the
    neurons of sections 12-14 are the same whether or not the training sections exist. On the whole VNC
    stack: 847 neurons, the largest 5.0 % of the interior, 88 spanning all 15 sections.
    """
    stack_dir = find_stack(stack)
    chosen = _select(stack_dir, sections)
    shape = _section_shape(chosen)
    return link_sections(~read_masks(mask_folder(stack_dir, "membrane"), chosen, shape))


def semantic_labels(stack: str | os.PathLike, sections: Sequence[int] | None = None,
                    class_names: Sequence[str] = VNC_CLASSES) -> np.ndarray:
    """Class map ``(Z, Y, X)`` uint8 of ``sections``: class k from the mask folder of ``class_names[k]``
    (k >= 1), later classes over earlier ones; 0 where no mask is set."""
    stack_dir = find_stack(stack)
    chosen = _select(stack_dir, sections)
    return _semantic(stack_dir, chosen, _section_shape(chosen), class_names)


def _semantic(stack_dir: Path, chosen: dict[int, Path], shape: tuple[int, int],
              class_names: Sequence[str]) -> np.ndarray:
    classes = np.zeros((len(chosen), *shape), dtype=np.uint8)
    for k, name in enumerate(class_names[1:], start=1):
        classes[read_masks(mask_folder(stack_dir, name), chosen, shape)] = k
    return classes


def _section_shape(chosen: dict[int, Path]) -> tuple[int, int]:
    first = read_image(next(iter(chosen.values())))
    return tuple(first.shape[:2])


def stack_target(stack_dir: Path, chosen: dict[int, Path], shape: tuple[int, int], config: TargetConfig) -> Target:
    """The target of the whole stack ``(Z, Y, X)`` (see the module docstring)."""
    if config.kind == "semantic":
        classes = _semantic(stack_dir, chosen, shape, config.names)
        return Target(classes=classes, convention=f"sections: classes from {', '.join(config.names[1:])} masks")
    if config.style != "membrane":
        raise DataError(f"{stack_dir}: the sections layout reads membranes (instances, style 'membrane') or "
                        f"semantic classes, not instances of style {config.style!r}")
    membrane = read_masks(mask_folder(stack_dir, "membrane"), chosen, shape)
    return Target(classes=(~membrane).astype(np.uint8), instances=link_sections(~membrane),
                  convention="sections: membranes > 0, neurons = interiors linked across sections")


def mirrored_sections(count: int, z_context: int) -> np.ndarray:
    """Section numbers ``0..count-1`` with ``z_context`` more at each end, mirrored by reflection about the end
    sections (``np.pad(mode="reflect")``: section -1 is section 1); entry ``z + j`` is the ``j``-th input section
    of section ``z``. The one convention of 2.5D inputs, in training and in prediction."""
    return np.pad(np.arange(count), z_context, mode="reflect")


def section_indices(z: int, count: int, z_context: int) -> np.ndarray:
    """The ``2 z_context + 1`` sections that section ``z`` of ``count`` is seen with:
    ``section_indices(0, 5, 2) == [2, 1, 0, 1, 2]``."""
    return mirrored_sections(count, z_context)[z: z + 2 * z_context + 1]


def context_channels(stack: np.ndarray, z: int, z_context: int) -> np.ndarray:
    """Section ``z`` of ``stack`` ``(C, Z, Y, X)`` with its ``z_context`` neighbours on each side:
    ``((2k + 1) C, Y, X)``, section-major, mirrored at the ends (:func:`section_indices`)."""
    indices = section_indices(z, stack.shape[1], z_context)
    return stack[:, indices].transpose(1, 0, 2, 3).reshape(-1, *stack.shape[2:])


def read_sections(
    images: str | os.PathLike,
    target: TargetConfig,
    *,
    normalization: NormalizationConfig | None = None,
    spatial_dims: int = 2,
    z_context: int = 0,
    nan_policy: str = "refuse",
) -> TrainingData:
    """Read a ``sections`` stack as :class:`TrainingData`: one ``(C, Z, Y, X)`` sample named after the stack
    folder for a 3D model, else one ``((2k + 1) C, Y, X)`` sample per section, named by its file stem."""
    stack_dir = find_stack(images)
    chosen = section_numbers(stack_dir)
    stack = read_raw(stack_dir, chosen, nan_policy)
    shape = tuple(stack.shape[2:])
    full = stack_target(stack_dir, chosen, shape, target)
    stack = normalize(stack, normalization or NormalizationConfig())
    notes = [f"read {len(chosen)} sections of {shape[0]} x {shape[1]} from {stack_dir}", f"masks: {full.convention}"]
    if spatial_dims == 3:
        if z_context:
            raise DataError(f"{stack_dir}: z_context is for 2D models; a 3D model sees the whole stack")
        sample = Sample(stack_dir.name, stack, full, stack_dir / "raw", stack_dir)
        return TrainingData([sample], int(stack.shape[0]), None, None, notes)
    if z_context >= len(chosen):
        raise DataError(f"{stack_dir}: z_context {z_context} needs at least {z_context + 1} sections, "
                        f"the stack has {len(chosen)}")
    samples = []
    for z, path in enumerate(chosen.values()):
        section = Target(full.classes[z], None if full.instances is None else full.instances[z], full.convention)
        samples.append(Sample(file_stem(path), context_channels(stack, z, z_context), section, path, stack_dir))
    if z_context:
        notes.append(f"2.5D: each section with {z_context} section(s) on each side as channels (mirrored at the ends)")
    return TrainingData(samples, int(samples[0].image.shape[0]), None, None, notes)


def split_volume(sample: Sample, validation: set[int]) -> tuple[list[Sample], list[Sample]]:
    """Split a stack's 3D sample ``(C, Z, Y, X)`` along z: each contiguous run of the z positions in
    ``validation`` becomes a validation volume, each run of the others a training volume, named
    ``stack1[z=0:12]`` (positions, end exclusive). The instances keep their ids."""
    depth = sample.image.shape[1]
    runs: list[tuple[int, int, bool]] = []
    for z in range(depth):
        held = z in validation
        if runs and runs[-1][2] == held:
            runs[-1] = (runs[-1][0], z + 1, held)
        else:
            runs.append((z, z + 1, held))
    train, val = [], []
    for start, stop, held in runs:
        target = sample.target
        part = Target(target.classes[start:stop], None if target.instances is None else target.instances[start:stop],
                      target.convention)
        piece = Sample(f"{sample.name}[z={start}:{stop}]", sample.image[:, start:stop], part, sample.image_path,
                       sample.mask_path)
        (val if held else train).append(piece)
    return train, val


__all__ = [
    "MIN_OVERLAP",
    "VNC_CLASSES",
    "context_channels",
    "find_stack",
    "link_sections",
    "mask_folder",
    "mirrored_sections",
    "neuron_labels",
    "read_sections",
    "section_indices",
    "section_numbers",
    "semantic_labels",
    "split_volume",
]
