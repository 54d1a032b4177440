"""Headless rendering picks EGL, falls back to OSMesa, and names the packages when neither works.

Each case runs in a fresh interpreter: the GL platform is chosen once per process.
"""

import ctypes.util
import json
import os
import subprocess
import sys

import pytest

# A small scene; `make_renderer` is asked for a backend order through MUJOCO_GL and the
# EGL / OSMesa context classes can be made to fail to mimic a missing library.
SCRIPT = r"""
import json, os, sys
import mujoco
import numpy as np
from equirl.evaluation import render

broken = set(sys.argv[1].split(",")) - {""}
real = render._context_class
def context_class(backend):
    if backend in broken:
        raise OSError(f"lib{backend} not found (simulated)")
    return real(backend)
render._context_class = context_class

model = mujoco.MjModel.from_xml_string(
    "<mujoco><worldbody><light pos='0 0 3'/><geom type='plane' size='2 2 .1' rgba='.2 .6 .2 1'/>"
    "<body pos='0 0 .5'><freejoint/><geom type='sphere' size='.2' rgba='.9 .1 .1 1'/></body></worldbody></mujoco>")
data = mujoco.MjData(model)
mujoco.mj_forward(model, data)
try:
    renderer = render.make_renderer(model, 64, 48)
except render.RenderError as err:
    print(json.dumps({"error": str(err)}))
    sys.exit(0)
renderer.update_scene(data)
frame = renderer.render()
renderer.close()
print(json.dumps({"backend": os.environ["MUJOCO_GL"], "colours": int(len(np.unique(frame.reshape(-1, 3), axis=0)))}))
"""


def _run(mujoco_gl: str, broken: str) -> dict:
    env = dict(os.environ, MUJOCO_GL=mujoco_gl)
    env.pop("PYOPENGL_PLATFORM", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT, broken], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


needs_osmesa = pytest.mark.skipif(
    ctypes.util.find_library("OSMesa") is None, reason="libOSMesa not installed (apt-get install libosmesa6)"
)


@needs_osmesa
def test_osmesa_renders_when_asked():
    result = _run("osmesa", "")
    assert result["backend"] == "osmesa" and result["colours"] > 1


@needs_osmesa
def test_egl_failure_falls_back_to_osmesa():
    result = _run("egl", "egl")
    assert result["backend"] == "osmesa" and result["colours"] > 1


def test_no_backend_names_the_packages_to_install():
    result = _run("egl", "egl,osmesa")
    assert "libegl1" in result["error"] and "libosmesa6" in result["error"]
    assert "libegl not found" in result["error"] and "libosmesa not found" in result["error"]
