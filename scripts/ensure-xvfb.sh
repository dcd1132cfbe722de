#!/usr/bin/env bash
# The napari viewer test opens a real napari window (Qt + OpenGL) under a virtual X server: Xvfb with
# Mesa's software OpenGL, and the X libraries PyQt5's xcb platform plugin loads. Install the Debian
# packages when missing and when we may (root with apt-get); otherwise say so and go on: the viewer
# test then reports itself as skipped with this reason.
set -u
PACKAGES="xvfb xauth libgl1 libgl1-mesa-dri libegl1 libglib2.0-0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 \
libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 \
libxcb-xkb1 libdbus-1-3 libfontconfig1"
missing=""
if command -v dpkg-query >/dev/null 2>&1; then
  for package in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
  done
elif command -v Xvfb >/dev/null 2>&1; then
  exit 0  # not Debian: trust an Xvfb that is there
else
  missing="$PACKAGES"
fi
if [ -z "$missing" ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Xvfb and the X/OpenGL libraries for the napari viewer test:$missing"
  # shellcheck disable=SC2086  # word splitting of the package list is intended
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing \
    >/dev/null) || echo "warning: could not install$missing; the napari viewer test will be skipped"
else
  echo "note: Xvfb or its libraries are missing ($missing) and cannot be installed here; the napari viewer test" \
    "will be skipped"
fi
exit 0
