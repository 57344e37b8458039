#!/usr/bin/env python3
"""Writes deploy/reference/agencies.json from units.json and the lists below.

Run by hand after import.py, or when a province's agencies change before
start-up (renames and mergers after start-up are events: RenameAgency,
MergeAgency). Only the standard library is needed.

Agency ids are `<unit id>/<agency>`: the unit it serves (official code) and
a short name, so an id says where it belongs (`vn:92/cong-an` is the police
of Cần Thơ, `vn:31135/cong-an` the police of Phường Ninh Kiều).

A province goes live when it is listed in PROVINCES with its provincial
agencies; every commune of a listed province gets its commune police (in
every commune since 2025) and its People's Committee, which handles the
case (Decree 56/2017).
"""

import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
REFORM = "2025-07-01"
BEFORE_REFORM = "2025-06-30"
# Decree 45/2025 and the 2025 restructuring moved state management of
# children from the Departments of Labour, Invalids and Social Affairs to the
# Departments of Health from 1 March 2025.
HEALTH_TAKES_OVER = "2025-03-01"
BEFORE_HEALTH = "2025-02-28"

NATIONAL = [
    {
        "id": "vn/tong-dai-111",
        "kind": "hotline",
        "unit": None,
        "names": [{"name": "Tổng đài điện thoại quốc gia bảo vệ trẻ em 111", "valid_from": None, "valid_to": None}],
        "successor": None,
        "supervisor": None,
    }
]


def agency(aid, kind, unit, name, valid_from=None, valid_to=None, successor=None, supervisor=None):
    return {
        "id": aid,
        "kind": kind,
        "unit": unit,
        "names": [{"name": name, "valid_from": valid_from, "valid_to": valid_to}],
        "successor": successor,
        "supervisor": supervisor,
    }


def can_tho():
    """Cần Thơ (vn:92) from 1 July 2025: the former Cần Thơ, Hậu Giang and
    Sóc Trăng (Resolution 202/2025/QH15)."""
    p = "vn:92"
    out = [
        agency(f"{p}/cong-an", "police", p, "Công an thành phố Cần Thơ"),
        agency(f"{p}/so-y-te", "health", p, "Sở Y tế thành phố Cần Thơ"),
        agency(f"{p}/so-gd-dt", "education", p, "Sở Giáo dục và Đào tạo thành phố Cần Thơ", supervisor=f"{p}/so-y-te"),
        agency(f"{p}/bv-nhi-dong", "health", p, "Bệnh viện Nhi đồng thành phố Cần Thơ", supervisor=f"{p}/so-y-te"),
        agency(f"{p}/bv-da-khoa", "health", p, "Bệnh viện Đa khoa thành phố Cần Thơ", supervisor=f"{p}/so-y-te"),
        agency(f"{p}/tt-ctxh", "social_protection", p, "Trung tâm Công tác xã hội thành phố Cần Thơ", supervisor=f"{p}/so-y-te"),
        agency(f"{p}/thanh-tra", "inspectorate", p, "Thanh tra thành phố Cần Thơ"),
    ]
    # The three former provinces' departments and police, ended and taken
    # over by Cần Thơ's.
    for old, name in [("vn-pre2025:92", "thành phố Cần Thơ"), ("vn-pre2025:93", "tỉnh Hậu Giang"), ("vn-pre2025:94", "tỉnh Sóc Trăng")]:
        out.append(agency(f"{old}/so-ldtbxh", "child_protection", old, f"Sở Lao động - Thương binh và Xã hội {name}",
                          valid_to=BEFORE_HEALTH, successor=f"{p}/so-y-te"))
        if old != "vn-pre2025:92":
            out.append(agency(f"{old}/so-y-te", "health", old, f"Sở Y tế {name}", valid_to=BEFORE_REFORM, successor=f"{p}/so-y-te"))
            out.append(agency(f"{old}/so-gd-dt", "education", old, f"Sở Giáo dục và Đào tạo {name}", valid_to=BEFORE_REFORM,
                              successor=f"{p}/so-gd-dt"))
            out.append(agency(f"{old}/cong-an", "police", old, f"Công an {name}", valid_to=BEFORE_REFORM, successor=f"{p}/cong-an"))
    return p, out


PROVINCES = [can_tho]


def lower_type(name):
    """`Phường Ninh Kiều` -> `phường Ninh Kiều`, as inside an agency's name."""
    for prefix in ("Phường", "Xã", "Đặc khu"):
        if name.startswith(prefix + " "):
            return prefix.lower() + name[len(prefix):]
    return name


def main():
    units = json.loads((HERE / "units.json").read_text(encoding="utf-8"))["units"]
    agencies = list(NATIONAL)
    live = []
    for province in PROVINCES:
        code, provincial = province()
        live.append(code)
        agencies.extend(provincial)
        for u in units:
            if u["parent"] != code:
                continue
            name = lower_type(u["names"][0]["name"])
            agencies.append(agency(f"{u['id']}/cong-an", "police", u["id"], f"Công an {name}", valid_from=REFORM,
                                   supervisor=f"{code}/cong-an"))
            agencies.append(agency(f"{u['id']}/ubnd", "commune_committee", u["id"], f"Ủy ban nhân dân {name}",
                                   valid_from=REFORM, supervisor=f"{code}/so-y-te"))
    ids = [a["id"] for a in agencies]
    assert len(ids) == len(set(ids)), "duplicate agency ids"
    out = HERE / "agencies.json"
    with out.open("w", encoding="utf-8") as f:
        f.write("{\n")
        about = {"generated_by": "deploy/reference/agencies.py", "provinces_live": live}
        f.write(f'"about": {json.dumps(about, ensure_ascii=False)},\n')
        f.write('"agencies": [\n')
        f.write(",\n".join(json.dumps(a, ensure_ascii=False) for a in agencies))
        f.write("\n]}\n")
    print(f"wrote {out}: {len(agencies)} agencies for {', '.join(live)}")


if __name__ == "__main__":
    main()
