"""Abbreviation tables: forms of the same word that mean the same thing (``Avenue``, ``Ave``, ``Av``).

The built-in tables are written from USPS Publication 28 (Appendix C1 street suffixes, C2 secondary
unit designators, directionals, and the state and territory codes). A table is a value: make your own
with :class:`AbbreviationTable` and pass it to ``Abbreviate(tables=...)`` or ``Expand(tables=...)``.

Each entry maps a canonical full form to its other forms; the first of them is the standard
abbreviation (the one ``abbreviate`` writes). Matching ignores case and trailing punctuation.

When the case is token-aligned, a table applies only to tokens whose label is in ``labels`` (so the
``St`` of ``St Louis`` is never read as ``Street``). On plain text there are no labels, so each table has
a ``plain_context`` rule saying where a match is safe, and forms listed in ``ambiguous`` are left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

__all__ = [
    "AbbreviationTable",
    "STREET_TYPES",
    "DIRECTIONALS",
    "UNIT_DESIGNATORS",
    "STATES",
    "ADDRESS_TABLES",
    "split_punctuation",
    "normalize_form",
]

#: A rule for plain text: ``(cores, start, end) -> bool`` says whether the match ``cores[start:end]`` may be
#: rewritten, where ``cores`` are the tokens without trailing punctuation. ``raw`` are the tokens as written.
PlainContext = Callable[[Sequence[str], Sequence[str], int, int], bool]

_TRAILING = re.compile(r"[,.;:]+$")


def split_punctuation(token: str) -> tuple[str, str]:
    """``"St.,"`` -> ``("St", ".,")``: a token's core and its trailing punctuation."""
    m = _TRAILING.search(token)
    if not m or m.start() == 0:
        return token, ""
    return token[: m.start()], token[m.start() :]


def normalize_form(text: str) -> str:
    """How forms are compared: dots dropped, blanks collapsed, case folded (``"D.C."`` -> ``"dc"``)."""
    return " ".join(text.replace(".", "").split()).casefold()


_norm = normalize_form


def _label_set(table: str, labels: object) -> frozenset[str]:
    """``labels`` as a frozenset of label names; a ``ValueError`` naming the table for anything else."""
    if isinstance(labels, str):
        return frozenset({labels})
    try:
        names = frozenset(labels)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(
            f"abbreviation table {table!r}: labels must be label names (a tuple, list or set of strings), got {labels!r}"
        ) from None
    odd = sorted(repr(n) for n in names if not isinstance(n, str))
    if odd:
        raise ValueError(f"abbreviation table {table!r}: labels must be strings, got {', '.join(odd)}")
    return names


@dataclass(frozen=True)
class AbbreviationTable:
    """Forms that mean the same thing, grouped by a canonical full form.

    ``entries``: canonical form -> other forms (the first is the standard abbreviation).
    ``labels``: the token labels this table applies to in token-aligned cases (empty: any label); any
    iterable of label names (a tuple, a list, a set), or one name as a string.
    ``plain_context``: where a match is safe in plain text (``None``: anywhere).
    ``ambiguous``: forms never rewritten in plain text (``St`` may be ``Saint``), compared case-insensitively.
    """

    name: str
    entries: Mapping[str, Sequence[str]] = field(hash=False)
    labels: frozenset[str] = frozenset()
    plain_context: PlainContext | None = None
    ambiguous: frozenset[str] = frozenset()
    _index: dict[str, str] = field(init=False, repr=False, compare=False, hash=False)
    _max_words: int = field(init=False, repr=False, compare=False, hash=False, default=1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _label_set(self.name, self.labels))
        index: dict[str, str] = {}
        for canonical, forms in self.entries.items():
            for form in (canonical, *forms):
                key = _norm(form)
                if key in index and index[key] != canonical:
                    raise ValueError(
                        f"abbreviation table {self.name!r}: form {form!r} is listed under both "
                        f"{index[key]!r} and {canonical!r}; give each form one meaning"
                    )
                index[key] = canonical
        object.__setattr__(self, "_index", index)
        words = [len(f.split()) for c, fs in self.entries.items() for f in (c, *fs)]
        object.__setattr__(self, "_max_words", max(words, default=1))
        object.__setattr__(self, "ambiguous", frozenset(_norm(a) for a in self.ambiguous))

    def canonical(self, form: str) -> str | None:
        """The canonical form ``form`` stands for (case and dots ignored), or ``None`` if it is not in the table."""
        return self._index.get(_norm(form))

    def canonical_of_key(self, key: str) -> str | None:
        """Like :meth:`canonical`, for a form already passed through :func:`normalize_form`."""
        return self._index.get(key)

    def abbreviation(self, canonical: str) -> str | None:
        """The standard abbreviation of a canonical form, or ``None`` if it has no other form."""
        forms = self.entries.get(canonical, ())
        return forms[0] if forms else None

    def is_abbreviation(self, form: str) -> bool:
        """True when ``form`` is in the table and is not the canonical full form."""
        canonical = self.canonical(form)
        return canonical is not None and _norm(canonical) != _norm(form)

    def is_ambiguous(self, form: str) -> bool:
        """True when ``form`` must not be rewritten without labels."""
        return _norm(form) in self.ambiguous

    @property
    def max_words(self) -> int:
        """The most words any form of this table has (``"New Hampshire"``: 2)."""
        return self._max_words


# --------------------------------------------------------------------------- USPS Publication 28, C1

_STREET_TYPES: dict[str, tuple[str, ...]] = {
    "Alley": ("Aly", "Allee", "Ally"),
    "Annex": ("Anx", "Anex", "Annx"),
    "Arcade": ("Arc",),
    "Avenue": ("Ave", "Av", "Aven", "Avenu", "Avn", "Avnue"),
    "Bayou": ("Byu", "Bayoo"),
    "Beach": ("Bch",),
    "Bend": ("Bnd",),
    "Bluff": ("Blf", "Bluf"),
    "Bottom": ("Btm", "Bot", "Bottm"),
    "Boulevard": ("Blvd", "Boul", "Boulv"),
    "Branch": ("Br", "Brnch"),
    "Bridge": ("Brg", "Brdge"),
    "Brook": ("Brk",),
    "Bypass": ("Byp", "Bypa", "Bypas", "Byps"),
    "Camp": ("Cp", "Cmp"),
    "Canyon": ("Cyn", "Canyn", "Cnyn"),
    "Cape": ("Cpe",),
    "Causeway": ("Cswy", "Causwa"),
    "Center": ("Ctr", "Cen", "Cent", "Centr", "Centre", "Cnter", "Cntr"),
    "Circle": ("Cir", "Circ", "Circl", "Crcl", "Crcle"),
    "Cliff": ("Clf",),
    "Club": ("Clb",),
    "Common": ("Cmn",),
    "Corner": ("Cor",),
    "Course": ("Crse",),
    "Court": ("Ct",),
    "Cove": ("Cv",),
    "Creek": ("Crk",),
    "Crescent": ("Cres", "Crsent", "Crsnt"),
    "Crest": ("Crst",),
    "Crossing": ("Xing", "Crssng"),
    "Curve": ("Curv",),
    "Dale": ("Dl",),
    "Dam": ("Dm",),
    "Divide": ("Dv", "Div", "Dvd"),
    "Drive": ("Dr", "Driv", "Drv"),
    "Estate": ("Est",),
    "Estates": ("Ests",),
    "Expressway": ("Expy", "Exp", "Expr", "Express", "Expw"),
    "Extension": ("Ext", "Extn", "Extnsn"),
    "Falls": ("Fls",),
    "Ferry": ("Fry", "Frry"),
    "Field": ("Fld",),
    "Fields": ("Flds",),
    "Flat": ("Flt",),
    "Ford": ("Frd",),
    "Forest": ("Frst",),
    "Forge": ("Frg", "Forg"),
    "Fork": ("Frk",),
    "Fort": ("Ft", "Frt"),
    "Freeway": ("Fwy", "Freewy", "Frway", "Frwy"),
    "Garden": ("Gdn", "Gardn", "Grden", "Grdn"),
    "Gardens": ("Gdns", "Grdns"),
    "Gateway": ("Gtwy", "Gatewy", "Gatway", "Gtway"),
    "Glen": ("Gln",),
    "Green": ("Grn",),
    "Grove": ("Grv", "Grov"),
    "Harbor": ("Hbr", "Harb", "Harbr", "Hrbor"),
    "Haven": ("Hvn",),
    "Heights": ("Hts", "Ht"),
    "Highway": ("Hwy", "Highwy", "Hiway", "Hiwy", "Hway"),
    "Hill": ("Hl",),
    "Hills": ("Hls",),
    "Hollow": ("Holw", "Hllw", "Hollows", "Holws"),
    "Inlet": ("Inlt",),
    "Island": ("Is", "Islnd"),
    "Junction": ("Jct", "Jction", "Jctn", "Junctn", "Juncton"),
    "Key": ("Ky",),
    "Knoll": ("Knl", "Knol"),
    "Lake": ("Lk",),
    "Lakes": ("Lks",),
    "Landing": ("Lndg", "Lndng"),
    "Lane": ("Ln",),
    "Light": ("Lgt",),
    "Manor": ("Mnr",),
    "Meadows": ("Mdws", "Mdw", "Medows"),
    "Mill": ("Ml",),
    "Mission": ("Msn", "Missn", "Mssn"),
    "Motorway": ("Mtwy",),
    "Mount": ("Mt", "Mnt"),
    "Mountain": ("Mtn", "Mntain", "Mntn", "Mountin", "Mtin"),
    "Orchard": ("Orch", "Orchrd"),
    "Parkway": ("Pkwy", "Parkwy", "Pkway", "Pky"),
    "Place": ("Pl",),
    "Plain": ("Pln",),
    "Plaza": ("Plz", "Plza"),
    "Point": ("Pt",),
    "Port": ("Prt",),
    "Prairie": ("Pr", "Prr"),
    "Ranch": ("Rnch", "Ranches", "Rnchs"),
    "Ridge": ("Rdg", "Rdge"),
    "River": ("Riv", "Rvr", "Rivr"),
    "Road": ("Rd",),
    "Route": ("Rte",),
    "Shore": ("Shr", "Shoar"),
    "Skyway": ("Skwy",),
    "Spring": ("Spg", "Spng", "Sprng"),
    "Springs": ("Spgs", "Spngs", "Sprngs"),
    "Square": ("Sq", "Sqr", "Sqre", "Squ"),
    "Station": ("Sta", "Statn", "Stn"),
    "Stream": ("Strm", "Streme"),
    "Street": ("St", "Strt", "Str"),
    "Summit": ("Smt", "Sumit", "Sumitt"),
    "Terrace": ("Ter", "Terr"),
    "Trace": ("Trce", "Traces"),
    "Trafficway": ("Trfy",),
    "Trail": ("Trl", "Trails", "Trls"),
    "Tunnel": ("Tunl", "Tunel", "Tunls", "Tunnels", "Tunnl"),
    "Turnpike": ("Tpke", "Trnpk", "Turnpk"),
    "Valley": ("Vly", "Vally", "Vlly"),
    "Viaduct": ("Via", "Vdct", "Viadct"),
    "View": ("Vw",),
    "Village": ("Vlg", "Vill", "Villag", "Villg"),
    "Ville": ("Vl",),
    "Vista": ("Vis", "Vist", "Vst", "Vsta"),
    "Wells": ("Wls",),
}

# --------------------------------------------------------------------------- directionals

_DIRECTIONALS: dict[str, tuple[str, ...]] = {
    "North": ("N",),
    "South": ("S",),
    "East": ("E",),
    "West": ("W",),
    "Northeast": ("NE",),
    "Northwest": ("NW",),
    "Southeast": ("SE",),
    "Southwest": ("SW",),
}

# --------------------------------------------------------------------------- USPS Publication 28, C2

_UNIT_DESIGNATORS: dict[str, tuple[str, ...]] = {
    "Apartment": ("Apt",),
    "Basement": ("Bsmt",),
    "Building": ("Bldg",),
    "Department": ("Dept",),
    "Floor": ("Fl", "Flr"),
    "Front": ("Frnt",),
    "Hangar": ("Hngr",),
    "Lobby": ("Lbby",),
    "Lower": ("Lowr",),
    "Office": ("Ofc",),
    "Penthouse": ("Ph",),
    "Room": ("Rm",),
    "Space": ("Spc",),
    "Suite": ("Ste",),
    "Trailer": ("Trlr",),
    "Upper": ("Uppr",),
}

# --------------------------------------------------------------------------- states and territories

_STATES: dict[str, tuple[str, ...]] = {
    "Alabama": ("AL", "Ala"),
    "Alaska": ("AK",),
    "Arizona": ("AZ", "Ariz"),
    "Arkansas": ("AR", "Ark"),
    "California": ("CA", "Calif", "Cal"),
    "Colorado": ("CO", "Colo"),
    "Connecticut": ("CT", "Conn"),
    "Delaware": ("DE", "Del"),
    "District of Columbia": ("DC", "D.C."),
    "Florida": ("FL", "Fla"),
    "Georgia": ("GA",),
    "Hawaii": ("HI",),
    "Idaho": ("ID",),
    "Illinois": ("IL", "Ill"),
    "Indiana": ("IN", "Ind"),
    "Iowa": ("IA",),
    "Kansas": ("KS", "Kan", "Kans"),
    "Kentucky": ("KY",),
    "Louisiana": ("LA",),
    "Maine": ("ME",),
    "Maryland": ("MD",),
    "Massachusetts": ("MA", "Mass"),
    "Michigan": ("MI", "Mich"),
    "Minnesota": ("MN", "Minn"),
    "Mississippi": ("MS", "Miss"),
    "Missouri": ("MO",),
    "Montana": ("MT", "Mont"),
    "Nebraska": ("NE", "Neb", "Nebr"),
    "Nevada": ("NV", "Nev"),
    "New Hampshire": ("NH",),
    "New Jersey": ("NJ",),
    "New Mexico": ("NM",),
    "New York": ("NY",),
    "North Carolina": ("NC",),
    "North Dakota": ("ND",),
    "Ohio": ("OH",),
    "Oklahoma": ("OK", "Okla"),
    "Oregon": ("OR", "Ore"),
    "Pennsylvania": ("PA", "Penn", "Penna"),
    "Rhode Island": ("RI",),
    "South Carolina": ("SC",),
    "South Dakota": ("SD",),
    "Tennessee": ("TN", "Tenn"),
    "Texas": ("TX", "Tex"),
    "Utah": ("UT",),
    "Vermont": ("VT",),
    "Virginia": ("VA",),
    "Washington": ("WA", "Wash"),
    "West Virginia": ("WV",),
    "Wisconsin": ("WI", "Wis", "Wisc"),
    "Wyoming": ("WY", "Wyo"),
    "Puerto Rico": ("PR",),
    "Guam": ("GU",),
    "Virgin Islands": ("VI",),
    "American Samoa": ("AS",),
    "Northern Mariana Islands": ("MP",),
}

# --------------------------------------------------------------------------- where a match is safe on plain text

_ZIP = re.compile(r"^\d{5}(-\d{4})?$")


def _has_digit(text: str) -> bool:
    return any(ch.isdigit() for ch in text)


def _ends_clause(raw: Sequence[str], cores: Sequence[str], end: int) -> bool:
    """The match ends the street part: last token, a comma, or followed by a number, unit or directional."""
    if end >= len(cores):
        return True
    if raw[end - 1].endswith(","):
        return True
    nxt = cores[end]
    return _has_digit(nxt) or nxt.startswith("#") or any(
        t.canonical(nxt) is not None for t in (_DIRECTIONAL_TABLE, _UNIT_TABLE)
    )


def _street_type_context(raw: Sequence[str], cores: Sequence[str], start: int, end: int) -> bool:
    # "123 Main St" but not "Court St" (name) nor "St Louis" (the city).
    if start == 0 or not any(ch.isalpha() for ch in cores[start - 1]):
        return False
    if _STREET_TABLE.canonical(cores[start - 1]) is not None:
        return False
    return _ends_clause(raw, cores, end)


def _directional_context(raw: Sequence[str], cores: Sequence[str], start: int, end: int) -> bool:
    # Pre-directional right after the house number ("123 N Main St"), never the street name itself
    # ("123 North Ave"); or post-directional right after the street type ("Main St NW").
    if start >= 1 and cores[start - 1].isdigit():
        if start >= 2 and _UNIT_TABLE.canonical(cores[start - 2]) is not None:
            return False  # "Suite 200 North ..." : the number is the unit's
        return end < len(cores) and _STREET_TABLE.canonical(cores[end]) is None
    if start >= 2 and _STREET_TABLE.canonical(cores[start - 1]) is not None:
        return _ends_clause(raw, cores, end)
    return False


def _unit_context(raw: Sequence[str], cores: Sequence[str], start: int, end: int) -> bool:
    # "Apt 4B", "Suite 200": the designator is followed by an identifier with a digit or one letter.
    if end >= len(cores):
        return False
    nxt = cores[end]
    return _has_digit(nxt) or (len(nxt) == 1 and nxt.isalpha())


def _state_context(raw: Sequence[str], cores: Sequence[str], start: int, end: int) -> bool:
    # "Chicago, IL 60637" or "Chicago, Illinois" at the end.
    if start == 0 or not raw[start - 1].endswith(","):
        return False
    return end == len(cores) or bool(_ZIP.match(cores[end]))


_STREET_TABLE = AbbreviationTable(
    "street_types",
    _STREET_TYPES,
    labels=frozenset({"StreetNamePostType", "StreetNamePreType"}),
    plain_context=_street_type_context,
    ambiguous=frozenset({"St", "Ft", "Mt", "Pt", "Is", "Via", "Br", "Pr", "Exp", "Express", "Cen"}),
)
_DIRECTIONAL_TABLE = AbbreviationTable(
    "directionals",
    _DIRECTIONALS,
    labels=frozenset({"StreetNamePreDirectional", "StreetNamePostDirectional"}),
    plain_context=_directional_context,
)
_UNIT_TABLE = AbbreviationTable(
    "unit_designators",
    _UNIT_DESIGNATORS,
    labels=frozenset({"OccupancyType"}),
    plain_context=_unit_context,
)
_STATE_TABLE = AbbreviationTable(
    "states",
    _STATES,
    labels=frozenset({"StateName"}),
    plain_context=_state_context,
    ambiguous=frozenset({"IN", "OR", "ME", "OK", "HI", "AS", "Miss", "Cal", "Ind", "Penn", "Wash", "Mass"}),
)

#: USPS street suffixes (Publication 28, Appendix C1), for tokens labeled as street types.
STREET_TYPES: AbbreviationTable = _STREET_TABLE
#: Directionals (``North`` / ``N``, ``Northeast`` / ``NE``, ...).
DIRECTIONALS: AbbreviationTable = _DIRECTIONAL_TABLE
#: Secondary unit designators (Publication 28, Appendix C2) that take an identifier.
UNIT_DESIGNATORS: AbbreviationTable = _UNIT_TABLE
#: States, the District of Columbia and territories, with their two-letter codes and older abbreviations.
STATES: AbbreviationTable = _STATE_TABLE
#: The tables ``abbreviate`` and ``expand`` use by default. States first: ``North Carolina`` is one match.
ADDRESS_TABLES: tuple[AbbreviationTable, ...] = (STATES, STREET_TYPES, DIRECTIONALS, UNIT_DESIGNATORS)
