"""Wrist-bend augmentation: rotate the hand beyond the wrist around the Lunate.

About a tenth of the competition's training radiographs show a bent wrist (radial or ulnar
deviation) against about half of its test radiographs. This augmentation makes more of them from
straight ones. The forearm (Radius, Ulna) stays fixed and the rest of the hand rotates rigidly
around the Lunate centroid.

Geometry, in pixel coordinates (x right, y down) of the input:

- centre ``c``: centroid of the Lunate mask.
- forearm axis ``u``: unit vector from the centroid of the Radius and Ulna masks together to ``c``,
  so it points from the elbow towards the fingers.
- wrist line: the line through ``c`` perpendicular to ``u``. The distal side is
  ``(p - c) . u > 0``.
- moving region: the distal side plus every pixel of a non-forearm bone (the carpals reach
  behind the line), minus pixels that belong to the forearm alone.

Masks: the 27 non-forearm channels rotate as whole rigid bones, nearest-neighbour. The Radius and
Ulna channels are returned unchanged. A mask is either the (H, W, 29) 0/1 stack or the same stack
bit-packed as (H, W, 4) by ``data.cache.pack_masks``. Nearest-neighbour sampling moves whole
bytes, so a packed mask warps in one 4-channel call instead of 29 channels.

Image: a pixel shows the rotated image where the rotated moving region lands, or where the moving
region was and nothing landed (the vacated wedge beside the wrist line). Elsewhere it keeps the
input. Forearm pixels always keep the input, so the image agrees with the unchanged Radius and
Ulna masks. Where a rotated bone lands on the forearm, the image takes the brighter of the two
values, because overlapping bones add up in a radiograph.

NOTE: the vacated wedge shows a rotated copy of what lay just proximal of the wrist line, which
can include a sliver of radius or ulna that no mask labels. The wedge has the angle of the bend
and its apex at the Lunate, so it stays small for bends up to about 30 degrees.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import cv2
import numpy as np

from data.cache import PACKED_BYTES, channel_bits
from data.classes import CLASS_INDEX, NUM_CLASSES

LUNATE = CLASS_INDEX["Lunate"]
FOREARM_CHANNELS: tuple[int, ...] = (CLASS_INDEX["Radius"], CLASS_INDEX["Ulna"])
NON_FOREARM_CHANNELS: tuple[int, ...] = tuple(
    i for i in range(NUM_CLASSES) if i not in FOREARM_CHANNELS
)

# cv2.warpAffine (OpenCV 5.1) accepts more than 4 channels but then returns wrong values: with 5 or
# more channels, most channels differ from that channel warped alone. So stacks are warped in
# chunks of 4 channels.
_CV2_CHUNK = 4


def mask_layer(mask: np.ndarray, channels: tuple[int, ...]) -> np.ndarray:
    """Return the (H, W) bool union of ``channels`` of an (H, W, 29) or packed (H, W, 4) mask."""
    if mask.shape[-1] == NUM_CLASSES:
        return np.any(mask[..., list(channels)] != 0, axis=-1)
    # The 4 packed bytes of a pixel read as one uint32 word, which is much faster than reducing
    # over a last axis of length 4.
    words = np.ascontiguousarray(_mask_stack(mask)).view(np.uint32)[..., 0]
    return (words & channel_bits(channels).view(np.uint32)[0]) != 0


def wrist_geometry(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Find the rotation centre and the forearm axis of one hand.

    Args:
        mask: (H, W, 29) uint8 or bool 0/1 mask stack, channels in ``data.classes.CLASSES`` order,
            or that stack bit-packed as (H, W, 4) uint8.

    Returns:
        ``(centre, axis)``: float64 arrays of shape (2,) in pixels (x, y). ``centre`` is the Lunate
        centroid and ``axis`` the unit vector from the forearm centroid towards it. ``None`` when
        the Lunate mask is empty, both Radius and Ulna masks are empty, or the two centroids
        coincide, because then no bend is defined.
    """
    centre = _centroid(mask_layer(mask, (LUNATE,)))
    forearm_centre = _centroid(mask_layer(mask, FOREARM_CHANNELS))
    if centre is None or forearm_centre is None:
        return None

    direction = centre - forearm_centre
    length = float(np.hypot(direction[0], direction[1]))
    if length < 1e-6:
        return None
    return centre, direction / length


def _centroid(layer: np.ndarray) -> np.ndarray | None:
    """Return the (x, y) mean of the True pixels of an (H, W) bool layer, or None if there are none."""
    moments = cv2.moments(layer.view(np.uint8), binaryImage=True)
    if moments["m00"] == 0:
        return None
    return np.array([moments["m10"] / moments["m00"], moments["m01"] / moments["m00"]])


def rotation_matrix(centre: np.ndarray, angle: float) -> np.ndarray:
    """Return the (2, 3) float64 affine matrix rotating by ``angle`` degrees around ``centre``.

    A positive angle turns counter-clockwise as the image is displayed (y down), as in
    ``cv2.getRotationMatrix2D``: a point right of the centre moves up.
    """
    return cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle), 1.0)


def warp_mask_nearest(mask: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Warp a mask stack with nearest-neighbour sampling, channel by channel.

    Args:
        mask: (H, W) or (H, W, C) uint8 mask, any number of channels.
        matrix: (2, 3) forward affine matrix from input to output pixel coordinates.

    Returns:
        Array of the input's shape and dtype. Pixels that map from outside the input are 0. Each
        channel equals that channel warped alone, because the stack is cut into chunks of at most
        four channels and every chunk keeps its channel axis, including a last chunk of one.
    """
    height, width = mask.shape[:2]

    def warp(chunk: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(
            chunk,
            matrix,
            (width, height),
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )

    if mask.ndim == 2:
        return warp(np.ascontiguousarray(mask))

    out = np.empty_like(mask)
    for start in range(0, mask.shape[2], _CV2_CHUNK):
        chunk = np.ascontiguousarray(mask[..., start : start + _CV2_CHUNK])
        # cv2 returns (H, W) for a one-channel input, so the slice assignment restores the axis.
        out[..., start : start + chunk.shape[2]] = warp(chunk).reshape(height, width, -1)
    return out


def bend_regions(
    mask: np.ndarray, centre: np.ndarray, axis: np.ndarray, matrix: np.ndarray
) -> dict[str, np.ndarray]:
    """Compute the (H, W) bool pixel sets that decide where the bent image takes each value.

    Returns:
        Dict with ``forearm`` (Radius or Ulna), ``moving`` (distal of the wrist line or a
        non-forearm bone, minus forearm-only pixels), ``vacated`` (moving pixels that are not
        forearm), ``rotated_moving`` and ``rotated_bones`` (the moving region and the non-forearm
        bones after the rotation).
    """
    height, width = mask.shape[:2]
    forearm = mask_layer(mask, FOREARM_CHANNELS)
    bones = mask_layer(mask, NON_FOREARM_CHANNELS)

    along_x = (np.arange(width) - centre[0]) * axis[0]
    along_y = (np.arange(height) - centre[1]) * axis[1]
    distal = along_y[:, None] + along_x[None, :] > 0
    moving = (distal | bones) & ~(forearm & ~bones)

    rotated = warp_mask_nearest(np.stack([moving, bones], axis=-1).view(np.uint8), matrix)
    return {
        "forearm": forearm,
        "moving": moving,
        "vacated": moving & ~forearm,
        "rotated_moving": rotated[..., 0].astype(bool),
        "rotated_bones": rotated[..., 1].astype(bool),
    }


def bend_image(
    image: np.ndarray, matrix: np.ndarray, regions: dict[str, np.ndarray], interpolation: int
) -> np.ndarray:
    """Composite the input and its rotation as the module docstring describes.

    Args:
        image: (H, W) or (H, W, C) image, any dtype that cv2.warpAffine accepts.
        matrix: (2, 3) rotation matrix from :func:`rotation_matrix`.
        regions: pixel sets from :func:`bend_regions`.
        interpolation: cv2 interpolation flag for the rotated image.

    Returns:
        Array of the input's shape and dtype.
    """
    height, width = image.shape[:2]
    rotated = cv2.warpAffine(
        image,
        matrix,
        (width, height),
        flags=interpolation,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    ).reshape(image.shape)

    def per_pixel(selector: np.ndarray) -> np.ndarray:
        return selector[..., None] if image.ndim == 3 else selector

    take_rotated = regions["rotated_moving"] | regions["vacated"]
    out = np.where(per_pixel(take_rotated), rotated, image)
    out = np.where(per_pixel(regions["forearm"]), image, out)
    overlap = regions["forearm"] & regions["rotated_bones"]
    return np.where(per_pixel(overlap), np.maximum(image, rotated), out)


class WristBend(A.DualTransform):
    """Rotate the hand beyond the wrist around the Lunate; Radius and Ulna stay fixed.

    Needs the 29-channel mask stack as ``mask``, (H, W, 29) in ``data.classes.CLASSES`` order or
    bit-packed (H, W, 4), because the Lunate, Radius and Ulna channels define the bend. The
    output mask has the input's layout. It is a no-op, returning image and mask unchanged, when
    the Lunate mask is empty or both forearm masks are empty. Whenever the transform fires, it
    draws the angle uniformly from ``angle_limit`` before it looks at the masks, so the random
    stream advances the same way whether or not the bend is defined. Bounding boxes and
    keypoints are not supported.

    Args:
        angle_limit: bend angle range in degrees, each end in [-90, 90]. A number ``a`` means
            ``(-a, a)``. Positive angles turn the hand counter-clockwise as displayed.
        interpolation: cv2 interpolation flag for the image. Masks always use nearest neighbour.
        p: probability of applying the transform.
    """

    def __init__(
        self,
        angle_limit: float | tuple[float, float] = 30.0,
        interpolation: int = cv2.INTER_LINEAR,
        p: float = 0.5,
    ):
        super().__init__(p=p)
        self.angle_limit = _angle_range(angle_limit)
        self.interpolation = interpolation

    @property
    def targets_as_params(self) -> list[str]:
        return ["mask"]

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        angle = self.py_random.uniform(*self.angle_limit)
        mask = _mask_stack(data.get("mask"))
        geometry = wrist_geometry(mask)
        if geometry is None or angle == 0.0:
            return {"angle": angle, "matrix": None, "regions": None}

        centre, axis = geometry
        matrix = rotation_matrix(centre, angle)
        return {"angle": angle, "matrix": matrix, "regions": bend_regions(mask, centre, axis, matrix)}

    def apply(self, img: np.ndarray, matrix: np.ndarray | None, regions: dict | None, **params: Any) -> np.ndarray:
        if matrix is None:
            return img
        return bend_image(img, matrix, regions, self.interpolation)

    def apply_to_mask(self, mask: np.ndarray, matrix: np.ndarray | None, **params: Any) -> np.ndarray:
        if matrix is None:
            return mask
        out = warp_mask_nearest(_mask_stack(mask), matrix)
        if mask.shape[-1] == NUM_CLASSES:
            forearm = list(FOREARM_CHANNELS)
            out[..., forearm] = mask[..., forearm]
            return out
        keep = channel_bits(FOREARM_CHANNELS)
        return (out & ~keep) | (mask & keep)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("angle_limit", "interpolation")


def _angle_range(angle_limit: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(angle_limit, (int, float)) and not isinstance(angle_limit, bool):
        low, high = -abs(float(angle_limit)), abs(float(angle_limit))
    else:
        try:
            low, high = (float(value) for value in angle_limit)
        except (TypeError, ValueError):
            raise ValueError(
                f"invalid WristBend angle_limit {angle_limit!r}: expected a number of degrees "
                "or a (low, high) pair"
            ) from None
    if not -90.0 <= low <= high <= 90.0:
        raise ValueError(
            f"invalid WristBend angle_limit {angle_limit!r}: expected -90 <= low <= high <= 90 degrees"
        )
    return low, high


def _mask_stack(mask: np.ndarray | None) -> np.ndarray:
    if mask is None or mask.ndim != 3 or mask.shape[2] not in (NUM_CLASSES, PACKED_BYTES):
        shape = None if mask is None else mask.shape
        raise ValueError(
            f"WristBend needs the {NUM_CLASSES}-channel mask stack as mask=(H, W, {NUM_CLASSES}), "
            f"or bit-packed as (H, W, {PACKED_BYTES}); got shape {shape}. Pass the full stack in "
            "data.classes.CLASSES order."
        )
    return mask
