"""Seeded, realistic drug terminologies: an eRx in two versions and an IRC.

Names are assembled from building blocks (ingredient, strength, form, route,
brand) in the style of the guide's samples, e.g.
``ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL`` and
``MOMETASONE FUROATE 0.1 % 15 g CREAM TOPICAL [MEGACORT]``. Results are cached per
seed for the life of the process, so starting many gateways costs one generation.
"""

from __future__ import annotations

import datetime as dt
import functools
import random

from ._jalali import jalali

__all__ = [
    "ERX_LATEST_SIZE",
    "ERX_OLD_SIZE",
    "ERX_OLD_VERSION_DATE",
    "ERX_VERSION_DATE",
    "IRC_SIZE",
    "IRC_VERSION_DATE",
    "ErxVersions",
    "Row",
    "generate_erx",
    "generate_irc",
]

#: One term as generated: (code, value, created).
Row = tuple[str, str, dt.datetime]
ErxVersions = tuple[tuple[Row, ...], tuple[Row, ...]]

ERX_OLD_SIZE = 46_000
ERX_DISCONTINUED = 1_000
ERX_CHANGED = 2_000
ERX_LATEST_SIZE = 50_000
IRC_SIZE = 20_000

ERX_OLD_VERSION_DATE = jalali(1398, 1, 15, 8, 0, 0)
ERX_VERSION_DATE = jalali(1402, 6, 1, 8, 0, 0)
IRC_VERSION_DATE = jalali(1401, 11, 20, 9, 30, 0)
_EPOCH = jalali(1395, 1, 1)

SAMPLE_ERX = {
    "60002": "ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL",
    "60281": "MOMETASONE FUROATE 0.1 % 15 g CREAM TOPICAL [MEGACORT]",
}

# fmt: off
_INGREDIENTS = (
    "ACETAMINOPHEN", "ACETYLCYSTEINE", "ACYCLOVIR", "ADALIMUMAB", "ALBENDAZOLE", "ALENDRONATE",
    "ALLOPURINOL", "ALPRAZOLAM", "AMIKACIN", "AMIODARONE", "AMITRIPTYLINE", "AMLODIPINE",
    "AMOXICILLIN", "AMOXICILLIN + CLAVULANIC ACID", "AMPICILLIN", "ATENOLOL", "ATORVASTATIN",
    "AZITHROMYCIN", "BACLOFEN", "BECLOMETASONE", "BETAMETHASONE", "BISOPROLOL", "BUDESONIDE",
    "CAPTOPRIL", "CARBAMAZEPINE", "CARVEDILOL", "CEFALEXIN", "CEFIXIME", "CEFTRIAXONE",
    "CETIRIZINE", "CHLORDIAZEPOXIDE", "CIPROFLOXACIN", "CITALOPRAM", "CLARITHROMYCIN",
    "CLINDAMYCIN", "CLOBETASOL", "CLONAZEPAM", "CLOPIDOGREL", "CLOTRIMAZOLE",
    "CO-TRIMOXAZOLE", "DEXAMETHASONE", "DIAZEPAM", "DICLOFENAC", "DIGOXIN", "DIPHENHYDRAMINE",
    "DOXYCYCLINE", "ENALAPRIL", "ERYTHROMYCIN", "ESCITALOPRAM", "ESOMEPRAZOLE", "FAMOTIDINE",
    "FERROUS SULFATE", "FEXOFENADINE", "FLUCONAZOLE", "FLUOXETINE", "FOLIC ACID", "FUROSEMIDE",
    "GABAPENTIN", "GENTAMICIN", "GLIBENCLAMIDE", "GLICLAZIDE", "HALOPERIDOL",
    "HYDROCHLOROTHIAZIDE", "HYDROCORTISONE", "HYOSCINE", "IBUPROFEN", "INSULIN GLARGINE",
    "ISOSORBIDE DINITRATE", "KETOCONAZOLE", "KETOTIFEN", "LAMOTRIGINE", "LEVETIRACETAM",
    "LEVOFLOXACIN", "LEVOTHYROXINE", "LISINOPRIL", "LORATADINE", "LORAZEPAM", "LOSARTAN",
    "MEBENDAZOLE", "MEFENAMIC ACID", "MELOXICAM", "METFORMIN", "METHOCARBAMOL", "METHYLDOPA",
    "METOCLOPRAMIDE", "METOPROLOL", "METRONIDAZOLE", "MICONAZOLE", "MOMETASONE FUROATE",
    "MONTELUKAST", "MUPIROCIN", "NAPROXEN", "NITROFURANTOIN", "NITROGLYCERIN", "NYSTATIN",
    "OFLOXACIN", "OMEPRAZOLE", "ONDANSETRON", "OSELTAMIVIR", "PANTOPRAZOLE", "PAROXETINE",
    "PENICILLIN G BENZATHINE", "PHENOBARBITAL", "PHENYTOIN", "PIROXICAM", "PREDNISOLONE",
    "PROPRANOLOL", "QUETIAPINE", "RANITIDINE", "RISPERIDONE", "ROSUVASTATIN", "SALBUTAMOL",
    "SERTRALINE", "SIMVASTATIN", "SODIUM VALPROATE", "SPIRONOLACTONE", "SUMATRIPTAN",
    "TAMSULOSIN", "TETRACYCLINE", "TIZANIDINE", "TOPIRAMATE", "TRAMADOL", "TRIAMCINOLONE",
    "VALSARTAN", "VANCOMYCIN", "VERAPAMIL", "VITAMIN D3", "WARFARIN", "ZINC SULFATE",
)

_SOLID = (
    ("TABLET", "ORAL"), ("FILM COATED TABLET", "ORAL"), ("CAPSULE", "ORAL"),
    ("EXTENDED RELEASE TABLET", "ORAL"), ("CHEWABLE TABLET", "ORAL"),
    ("EFFERVESCENT TABLET", "ORAL"), ("DELAYED RELEASE CAPSULE", "ORAL"),
    ("SUPPOSITORY", "RECTAL"), ("VAGINAL TABLET", "VAGINAL"),
)
_LIQUID = (
    ("SYRUP", "ORAL"), ("SUSPENSION", "ORAL"), ("SOLUTION / DROPS", "ORAL"),
    ("INJECTION, SOLUTION", "INTRAVENOUS"), ("INJECTION, SOLUTION", "INTRAMUSCULAR"),
    ("INJECTION, POWDER, FOR SOLUTION", "INTRAVENOUS"), ("SOLUTION", "OPHTHALMIC"),
    ("SPRAY", "NASAL"), ("ELIXIR", "ORAL"),
)
_TOPICAL = (
    ("CREAM", "TOPICAL"), ("OINTMENT", "TOPICAL"), ("GEL", "TOPICAL"), ("LOTION", "TOPICAL"),
    ("OINTMENT", "OPHTHALMIC"), ("CREAM", "VAGINAL"),
)
_MG = ("1", "2", "2.5", "5", "10", "20", "25", "40", "50", "75", "100", "125", "150", "200",
       "250", "300", "400", "500", "600", "750", "850", "1000")
_PER_ML = ("1mL", "5mL", "2mL", "10mL")
_VOLUMES = ("5", "10", "15", "20", "30", "60", "100", "120", "200", "250")
_PERCENT = ("0.025", "0.05", "0.1", "0.5", "1", "2", "5", "10")
_GRAMS = ("5", "10", "15", "20", "25", "30", "50")
_BRAND_HEADS = (
    "MEGA", "ZIN", "ARA", "DARU", "TEH", "PARS", "SINA", "RAZ", "FARA", "NIK", "BEH", "AMIN",
    "HAKIM", "OSVE", "ABI", "ROZ", "KIMIA", "SOBH", "ALBOR", "JAM", "MINA", "EXIR", "SHIR",
    "TOLI", "DANA", "ROSH", "VITA", "ZAG",
)
_BRAND_TAILS = (
    "CORT", "FEN", "MOX", "ZOL", "CIN", "PRIL", "STAT", "DOL", "LIN", "VIR", "TAB", "XAN",
    "MED", "FLU", "SAN", "PHARM", "GESIC", "TRIN", "LOX", "DERM",
)
_PACKS = ("10", "14", "20", "28", "30", "50", "100")
# fmt: on


def _brand(rng: random.Random) -> str:
    return rng.choice(_BRAND_HEADS) + rng.choice(_BRAND_TAILS)


def _drug_name(rng: random.Random, branded: float = 0.5) -> str:
    ingredient = rng.choice(_INGREDIENTS)
    shape = rng.random()
    if shape < 0.55:
        form, route = rng.choice(_SOLID)
        name = f"{ingredient} {rng.choice(_MG)} mg {form} {route}"
    elif shape < 0.85:
        form, route = rng.choice(_LIQUID)
        name = (
            f"{ingredient} {rng.choice(_MG)} mg / {rng.choice(_PER_ML)} "
            f"{rng.choice(_VOLUMES)} mL {form} {route}"
        )
    else:
        form, route = rng.choice(_TOPICAL)
        name = f"{ingredient} {rng.choice(_PERCENT)} % {rng.choice(_GRAMS)} g {form} {route}"
    if rng.random() < branded:
        name += f" [{_brand(rng)}]"
    return name


def _moment(rng: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    span = int((end - start).total_seconds())
    return start + dt.timedelta(seconds=rng.randrange(span))


@functools.lru_cache(maxsize=4)
def generate_erx(seed: int) -> ErxVersions:
    """eRx version "1000" (older, 46,000 codes) and "10000" (latest, 50,000 codes).

    The latest drops 1,000 old codes, changes the value of 2,000 (re-created at
    the change), and adds 5,000 codes with higher numbers. 60002 is in both with
    the guide's value; 60281 is new in the latest.
    """
    rng = random.Random(f"erx:{seed}")
    old: dict[str, Row] = {}
    code = 60000
    while len(old) < ERX_OLD_SIZE:
        text = str(code)
        if text == "60002":
            old[text] = (text, SAMPLE_ERX[text], _EPOCH + dt.timedelta(days=3))
        elif text != "60281":
            old[text] = (text, _drug_name(rng), _moment(rng, _EPOCH, ERX_OLD_VERSION_DATE))
        code += rng.randint(1, 3)

    latest = dict(old)
    candidates = [key for key in old if key != "60002"]
    removed = rng.sample(candidates, ERX_DISCONTINUED + ERX_CHANGED)
    for key in removed[:ERX_DISCONTINUED]:
        del latest[key]
    for key in removed[ERX_DISCONTINUED:]:
        latest[key] = (
            key,
            _drug_name(rng, branded=1.0),
            _moment(rng, ERX_OLD_VERSION_DATE, ERX_VERSION_DATE),
        )
    latest["60281"] = ("60281", SAMPLE_ERX["60281"], jalali(1399, 2, 11, 10, 12, 0))
    code += 1000
    while len(latest) < ERX_LATEST_SIZE:
        text = str(code)
        latest[text] = (text, _drug_name(rng), _moment(rng, ERX_OLD_VERSION_DATE, ERX_VERSION_DATE))
        code += rng.randint(1, 3)
    return tuple(old.values()), tuple(sorted(latest.values(), key=lambda row: int(row[0])))


@functools.lru_cache(maxsize=4)
def generate_irc(seed: int) -> tuple[Row, ...]:
    """IRC: 20,000 sixteen-digit product codes with brand and pack size."""
    rng = random.Random(f"irc:{seed}")
    rows: dict[str, Row] = {}
    while len(rows) < IRC_SIZE:
        code = str(rng.randrange(10**15, 10**16))
        if code in rows:
            continue
        value = f"{_drug_name(rng, branded=0.0)} [{_brand(rng)}] {rng.choice(_PACKS)} IN BOX"
        rows[code] = (code, value, _moment(rng, _EPOCH, IRC_VERSION_DATE))
    return tuple(rows.values())
