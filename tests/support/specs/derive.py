"""Derive a compact table of facts from a NISAR L2 GCOV product specification XML.

The specification XMLs ship with isce-framework/nisarqa
(``src/nisarqa/product_specs/<version>/nisar_L2_GCOV.xml``). We keep the facts the generator
(``tests/support/granules.py``) needs, not the files: per dataset its kind, width, signedness,
string length, named shape, the attribute names the specification lists and the attribute
values that are real values (units, ``_FillValue``, ``valid_min``, ``long_name``, ...), and the
first sentence of its description.

Usage::

    python tests/support/specs/derive.py nisar_L2_GCOV.xml 1.4.0 [--commit SHA] > gcov_1.4.0.json

How the XML says things (checked on 1.1.0 to 1.6.0):

- a node is ``<real|integer|string name="/science/LSAR/..." shape="<named shape>" ...>``;
  ``width`` is bits, ``signed`` "true"/"false" (integers), ``length`` the characters of a
  string (0: not fixed by the specification);
- **complex** data are ``<real width="32">`` whose named shape ends with a dimension named
  ``complex`` of extent 2, with a second annotation ``<annotation app="io" kwd="complex"/>``;
  the table says ``kind="complex"`` and ``width`` of one component;
- attributes are the XML attributes of ``<annotation app="conformance">``: some hold a value
  (``units="1"``, ``_FillValue="nan"``), some a description of what the product computes
  (``mean_value="Arithmetic average ..."``), and ``DIMENSION_LIST``/``REFERENCE_LIST``/``CLASS``/
  ``NAME`` say "HDF5 internal attribute" (dimension scales);
- named shapes are ``<shape name=...>`` with ``<dimension name=... extent=...>`` (extent 0: the
  product's own size).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET

# annotation attributes whose XML value is the attribute's value in the product
VALUE_ATTRS = ("units", "_FillValue", "valid_min", "valid_max", "long_name", "grid_mapping",
               "standard_name", "pixel_coordinate_convention", "ogr_geometry", "epsg")
INTERNAL = ("DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME")
SKIP = ("app", "lang")
SOURCE = {
    "repository": "https://github.com/isce-framework/nisarqa",
    "path": "src/nisarqa/product_specs/{version}/nisar_L2_GCOV.xml",
    "licence": "Apache-2.0 OR BSD-3-Clause (nisarqa's LICENSE-Apache-2.0.txt, LICENSE-BSD-3-Clause.txt)",
}


def first_sentence(text: str, limit: int = 80) -> str:
    text = " ".join((text or "").split())
    m = re.match(r"(.+?[.;])(\s|$)", text)
    out = m.group(1).rstrip(".;") if m else text
    return out if len(out) <= limit else out[: limit - 3].rstrip() + "..."


def _value(key: str, raw: str):
    """An annotation attribute's value, or None when the XML describes it instead."""
    raw = raw.strip()
    if key == "epsg":
        return int(raw) if raw.isdigit() else None  # "EPSG code": a description
    if key in ("valid_min", "valid_max"):
        return float(raw) if "." in raw else int(raw)
    return raw


def derive(xml_text: str, version: str, commit: str = "") -> dict:
    root = ET.fromstring(xml_text)
    shapes: dict[str, list] = {}
    for s in root.iter("shape"):
        dims = []
        for d in s.findall("dimension"):
            extent = int(d.get("extent", "0"))
            dims.append(extent if extent else d.get("name"))
            if d.get("name") == "complex":
                dims[-1] = "complex"
        shapes[s.get("name")] = dims
    science = root.find(".//science")
    root_ann = science.find("annotation") if science is not None else None
    root_attrs = {k: v for k, v in (root_ann.attrib if root_ann is not None else {}).items()
                  if k not in SKIP}
    datasets: dict[str, dict] = {}
    for node in root.find(".//nodes"):
        path = node.get("name").lstrip("/")
        shape = node.get("shape")
        conf = next((a for a in node.findall("annotation") if a.get("app") == "conformance"), None)
        io = [a for a in node.findall("annotation") if a.get("app") == "io"]
        is_complex = "complex" in shapes.get(shape, ()) or any(a.get("kwd") == "complex" for a in io)
        d: dict = {"kind": "complex" if is_complex else node.tag, "shape": shape}
        if node.get("width"):
            d["width"] = int(node.get("width"))
        if node.get("signed"):
            d["signed"] = node.get("signed") == "true"
        if node.tag == "string":
            d["length"] = int(node.get("length", "0"))
        attrs, names = {}, []
        for k, raw in (conf.attrib.items() if conf is not None else ()):
            if k in SKIP:
                continue
            v = _value(k, raw) if k in VALUE_ATTRS else None
            if v is not None:
                attrs[k] = v
            elif k == "CLASS":
                d["scale"] = True  # a dimension scale (CLASS, NAME, REFERENCE_LIST)
            elif k == "DIMENSION_LIST":
                d["dims"] = True  # dimension scales attached
            elif k not in INTERNAL:
                names.append(k)  # present in the product, value computed by it
        if attrs:
            d["attrs"] = attrs
        if names:
            d["names"] = names
        desc = first_sentence(conf.text if conf is not None else "")
        if desc:
            d["description"] = desc
        datasets[path] = d
    return {
        "version": version,
        "source": {**SOURCE, "path": SOURCE["path"].format(version=version), "commit": commit},
        "root_attrs": root_attrs,
        "shapes": shapes,
        "datasets": datasets,
    }


def dump(table: dict) -> str:
    """JSON with one line per shape and per dataset, datasets under their group's path (in
    the specification's order): small, and diffs read well. ``load`` gives the flat table."""
    groups: dict[str, dict] = {}
    for path, d in table["datasets"].items():
        group, name = path.rsplit("/", 1)
        groups.setdefault(group, {})[name] = d
    lines = ["{"]
    for key in ("version", "source", "root_attrs"):
        lines.append(f"  {json.dumps(key)}: {json.dumps(table[key])},")
    lines.append('  "shapes": {')
    lines.append(",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}"
                            for k, v in table["shapes"].items()))
    lines.append("  },")
    lines.append('  "groups": {')
    blocks = []
    for group, items in groups.items():
        inner = ",\n".join(f"      {json.dumps(k)}: {json.dumps(v)}" for k, v in items.items())
        blocks.append(f"    {json.dumps(group)}: {{\n{inner}\n    }}")
    lines.append(",\n".join(blocks))
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def load(path) -> dict:
    """A derived table with ``datasets`` flat again: path (no leading slash) -> facts."""
    with open(path, encoding="utf-8") as f:
        table = json.load(f)
    table["datasets"] = {f"{g}/{n}": d for g, items in table.pop("groups").items()
                         for n, d in items.items()}
    return table


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("xml")
    p.add_argument("version")
    p.add_argument("--commit", default="", help="nisarqa commit the XML was taken from")
    a = p.parse_args(argv)
    with open(a.xml, encoding="utf-8") as f:
        sys.stdout.write(dump(derive(f.read(), a.version, a.commit)))


if __name__ == "__main__":
    main()
