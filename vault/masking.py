"""Masked display of normalised values, for staff who may see a hint but not the value:
`张*明`, `欧阳**`, `138****5678`, `410***********123X`, `z***@example.com`, an address cut to its
district. Built on the conventions of Chinese government publications."""

from __future__ import annotations

import re

from vault.kinds import Kind

STAR = "*"
_PROVINCE = r"(?:[^省市区]{2,7}?(?:省|自治区|特别行政区)|北京市|天津市|上海市|重庆市)"
_PREFECTURE = r"(?:[^省市区县旗]{1,9}?(?:自治州|地区|盟|市))"
_COUNTY = r"(?:[^省市区县旗]{1,9}?(?:自治县|自治旗|林区|特区|区|县|旗|市))"
_ADMIN_PREFIX = re.compile(rf"{_PROVINCE}?{_PREFECTURE}?{_COUNTY}")
_ADMIN_FALLBACK = re.compile(rf"{_PROVINCE}{_PREFECTURE}?|{_PREFECTURE}")


def mask(kind: Kind, value: str) -> str:
    """The masked form of a normalised value of `kind`."""
    if kind is Kind.ID_NUMBER:
        return value[:3] + STAR * (len(value) - 7) + value[-4:]
    if kind is Kind.PHONE:
        return value[:3] + STAR * (len(value) - 7) + value[-4:]
    if kind is Kind.EMAIL:
        local, _, domain = value.rpartition("@")
        return f"{local[0]}***@{domain}"
    if kind is Kind.NAME:
        return mask_name(value)
    return mask_address(value)


def mask_name(name: str) -> str:
    """Chinese names keep the surname and, from three characters, the last one; the parts of a
    minority name keep their dots; Latin names keep each word's initial."""
    if " " in name or name.isascii():
        return " ".join(word[0] + STAR * (len(word) - 1) for word in name.split(" "))
    if "·" in name:
        return name[0] + "".join(c if c == "·" else STAR for c in name[1:])
    if len(name) <= 2:
        return name[0] + STAR
    if len(name) == 3:
        return name[0] + STAR + name[2]
    return name[:2] + STAR * (len(name) - 2)


def mask_address(address: str) -> str:
    """The address down to its county-level district, the rest hidden; an address without a
    recognisable district keeps at most its province and prefecture, or nothing."""
    compact = address.replace(" ", "")
    found = _ADMIN_PREFIX.match(compact) or _ADMIN_FALLBACK.match(compact)
    kept = found.group(0) if found else ""
    if len(kept) >= len(compact):
        kept = kept[: max(0, len(compact) - 4)]
    return kept + STAR * 4
