#!/usr/bin/env python3
"""Writes deploy/reference/units.json from maintained open data.

Run by hand when the government changes administrative units, never at
build time:

    python3 deploy/reference/import.py   # makes a venv in /tmp, fetches the sources, writes units.json

What it writes (see README.md beside it):
- the 34 province-level units and 3,321 commune-level units in force from
  1 July 2025, ids `vn:<code>` with the national statistics office's codes;
- the 63 provinces, their districts and their wards/communes/towns in force
  until 30 June 2025, ids `vn-pre2025:<code>`, each commune-level unit with
  its successor(s) from 1 July 2025 (several when it was split).

Source: the PyPI package `vietnamadminunits` (MIT), its bundled SQLite
dataset (codes and names, before and after) and its converter table (old
ward -> new ward(s)). The package `vietnam-provinces` (GPL-3.0-or-later,
which since 2026.1 carries the official list of danhmuchanhchinh.nso.gov.vn)
is used only to cross-check the codes of the units in force; nothing of it
is written.
"""

import datetime
import json
import os
import pathlib
import sqlite3
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
VENV = pathlib.Path(os.environ.get("BAOVE_REFERENCE_VENV", "/tmp/baove-reference-venv"))
SOURCE_PIN = "vietnamadminunits==1.0.4"
# Its releases with the official data need Python 3.12; only its data file is
# read, from the wheel, so the interpreter that runs this does not matter.
CHECK_PIN = "vietnam-provinces==2026.9.0"
NEW = "vn:"
OLD = "vn-pre2025:"
REFORM_FIRST_DAY = "2025-07-01"
OLD_LAST_DAY = "2025-06-30"


def ensure_venv():
    python = VENV / "bin" / "python"
    if os.environ.get("BAOVE_REFERENCE_IN_VENV") == "1":
        return
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", SOURCE_PIN], check=True)
    wheels = VENV / "check-wheel"
    subprocess.run(
        [str(python), "-m", "pip", "download", "-q", "--no-deps", "--python-version", "3.12",
         "--only-binary=:all:", "-d", str(wheels), CHECK_PIN],
        check=True,
    )
    env = dict(os.environ, BAOVE_REFERENCE_IN_VENV="1")
    sys.exit(subprocess.run([str(python), __file__, *sys.argv[1:]], env=env).returncode)


def package_dir(name):
    import importlib

    return pathlib.Path(importlib.import_module(name).__file__).parent


def version(dist):
    from importlib.metadata import version as v

    return v(dist)


def check_divisions():
    """The nested divisions of the cross-check package, read from its wheel."""
    import zipfile

    wheel = next((VENV / "check-wheel").glob("vietnam_provinces-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        data = json.loads(z.read("vietnam_provinces/data/nested-divisions.json"))
    return wheel.name.split("-")[1], data


def province_kind(name):
    return "city" if name.startswith("Thành phố") else "province"


WARD_KINDS = {
    "Phường": "ward",
    "Xã": "commune",
    "Đặc khu": "special_zone",
    "Thị trấn": "town",
}


def ward_kind(name, listed_type):
    """The kind from the official name's prefix (the dataset's type column
    disagrees with the name for a few units); the type column otherwise."""
    for prefix, kind in WARD_KINDS.items():
        if name.startswith(prefix + " "):
            return kind
    return WARD_KINDS[listed_type]


def unit(uid, code, kind, parent, name, valid_from, valid_to, successors):
    return {
        "id": uid,
        "code": code,
        "kind": kind,
        "parent": parent,
        "names": [{"name": name, "valid_from": valid_from, "valid_to": valid_to}],
        "successors": successors,
    }


def main():
    ensure_venv()
    vau = package_dir("vietnamadminunits")
    db = sqlite3.connect(vau / "data" / "dataset.db")
    converter = json.loads((vau / "data" / "converter_2025.json").read_text(encoding="utf-8"))

    units = []
    new_by_key = {}
    provinces_new = {}
    for province, code, key in db.execute(
        "select distinct province, provinceCode, provinceKey from admin_units order by provinceCode"
    ):
        provinces_new[key] = NEW + code
        units.append(unit(NEW + code, code, province_kind(province), None, province, REFORM_FIRST_DAY, None, []))
    for pkey, wkey, pcode, wcode, ward, wtype in db.execute(
        "select provinceKey, wardKey, provinceCode, wardCode, ward, wardType from admin_units order by wardCode"
    ):
        new_by_key[(pkey, wkey)] = NEW + wcode
        units.append(unit(NEW + wcode, wcode, ward_kind(ward, wtype), NEW + pcode, ward, REFORM_FIRST_DAY, None, []))

    successors = {}
    for pkey, wards in converter["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for wkey, olds in wards.items():
            for old in olds:
                successors.setdefault(old.rstrip("_"), set()).add(new_by_key[(pkey, wkey)])
    for pkey, olds in converter["DICT_PROVINCE_WARD_DIVIDED"].items():
        for old, news in olds.items():
            for new in news:
                successors.setdefault(old.rstrip("_"), set()).add(new_by_key[(pkey, new["newWardKey"])])
    province_successor = {}
    for new_key, old_keys in converter["DICT_PROVINCE"].items():
        for old_key in old_keys:
            province_successor[old_key] = provinces_new[new_key]

    seen_provinces, seen_districts = set(), set()
    rows = db.execute(
        "select provinceKey, districtKey, wardKey, provinceCode, districtCode, wardCode,"
        " province, district, ward, wardType from admin_units_legacy order by provinceCode, districtCode, wardCode"
    ).fetchall()
    for pkey, dkey, wkey, pcode, dcode, wcode, province, district, ward, wtype in rows:
        if pcode not in seen_provinces:
            seen_provinces.add(pcode)
            units.append(
                unit(OLD + pcode, pcode, province_kind(province), None, province, None, OLD_LAST_DAY,
                     [province_successor[pkey]])
            )
        if dcode not in seen_districts:
            seen_districts.add(dcode)
            # An island district without communes was itself the commune-level
            # unit; it became a special zone. Other districts were abolished:
            # their province's successor takes their place in roll-ups.
            island = wcode is None
            district_successors = (
                sorted(successors[f"{pkey}_{dkey}"]) if island else [province_successor[pkey]]
            )
            units.append(
                unit(OLD + dcode, dcode, "island_district" if island else "district", OLD + pcode, district,
                     None, OLD_LAST_DAY, district_successors)
            )
        if wcode is None:
            continue
        key = f"{pkey}_{dkey}_{wkey}"
        units.append(
            unit(OLD + wcode, wcode, ward_kind(ward, wtype), OLD + dcode, ward, None, OLD_LAST_DAY,
                 sorted(successors[key]))
        )

    ids = [u["id"] for u in units]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for u in units:
        if u["id"].startswith(OLD) and u["kind"] != "district" and not u["successors"]:
            raise SystemExit(f"{u['id']} ({u['names'][0]['name']}) has no successor")

    # Cross-check the units in force against the second, independent source.
    check_version, vp = check_divisions()
    theirs = {}
    for p in vp:
        theirs[NEW + f"{p['code']:02d}"] = p["name"]
        for w in p["wards"]:
            theirs[NEW + f"{w['code']:05d}"] = w["name"]
    ours = {u["id"]: u["names"][0]["name"] for u in units if u["id"].startswith(NEW)}
    missing = sorted(set(ours) ^ set(theirs))
    if missing:
        for k in missing[:20]:
            print(f"sources disagree on {k}: {ours.get(k)!r} vs {theirs.get(k)!r}", file=sys.stderr)
        raise SystemExit(f"{len(missing)} codes are in one source only; check before writing")
    # Names may differ in the place of a tone mark (Hòa/Hoà) or the apostrophe
    # (M'Drắk/M’Drắk): reported, not fatal; search ignores both.
    spelled = sorted(k for k in ours if ours[k] != theirs[k])
    for k in spelled:
        print(f"spelled differently: {k} {ours[k]!r} / {theirs[k]!r}")

    header = {
        "generated_by": "deploy/reference/import.py",
        "generated_on": datetime.date.today().isoformat(),
        "source": f"vietnamadminunits {version('vietnamadminunits')} (MIT, https://github.com/tranngocminhhieu/vietnamadminunits): codes, names, old-to-new mapping",
        "checked_against": f"vietnam-provinces {check_version} (GPL-3.0-or-later, https://github.com/sunshine-tech/VietnamProvinces, official data of danhmuchanhchinh.nso.gov.vn): codes of the units in force compared, all equal; {len(spelled)} names spelled differently (tone mark place, apostrophe), ours kept",
        "ids": f"{NEW}<code> in force from {REFORM_FIRST_DAY}; {OLD}<code> in force until {OLD_LAST_DAY}",
    }
    out = HERE / "units.json"
    with out.open("w", encoding="utf-8") as f:
        f.write("{\n")
        f.write(f'"about": {json.dumps(header, ensure_ascii=False)},\n')
        f.write('"units": [\n')
        f.write(",\n".join(json.dumps(u, ensure_ascii=False) for u in units))
        f.write("\n]}\n")
    counts = {}
    for u in units:
        scheme = "new" if u["id"].startswith(NEW) else "old"
        counts[(scheme, u["kind"])] = counts.get((scheme, u["kind"]), 0) + 1
    print(f"wrote {out}: {len(units)} units")
    for (scheme, kind), n in sorted(counts.items()):
        print(f"  {scheme:3} {kind:16} {n}")


if __name__ == "__main__":
    main()
