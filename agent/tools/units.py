"""Unit conversion by factors to one base unit per quantity (temperature by formula)."""

from __future__ import annotations

import re

from langchain_core.tools import tool

from .calculator import format_number

# quantity -> symbol -> (factor to the base unit, names people type)
_UNITS: dict[str, dict[str, tuple[float, tuple[str, ...]]]] = {
    "length": {
        "m": (1.0, ("meter", "meters", "metre", "metres")),
        "km": (1000.0, ("kilometer", "kilometers", "kilometre", "kilometres")),
        "cm": (0.01, ("centimeter", "centimeters", "centimetre", "centimetres")),
        "mm": (0.001, ("millimeter", "millimeters", "millimetre", "millimetres")),
        "µm": (1e-6, ("um", "micrometer", "micrometers", "micron", "microns")),
        "mi": (1609.344, ("mile", "miles")),
        "yd": (0.9144, ("yard", "yards")),
        "ft": (0.3048, ("foot", "feet", "'")),
        "in": (0.0254, ("inch", "inches", '"')),
        "nmi": (1852.0, ("nautical mile", "nautical miles")),
    },
    "mass": {
        "kg": (1.0, ("kilogram", "kilograms", "kilo", "kilos")),
        "g": (0.001, ("gram", "grams")),
        "mg": (1e-6, ("milligram", "milligrams")),
        "t": (1000.0, ("tonne", "tonnes", "metric ton", "metric tons")),
        "lb": (0.45359237, ("lbs", "pound", "pounds")),
        "oz": (0.028349523125, ("ounce", "ounces")),
        "st": (6.35029318, ("stone", "stones")),
    },
    "volume": {
        "l": (1.0, ("liter", "liters", "litre", "litres")),
        "ml": (0.001, ("milliliter", "milliliters", "millilitre", "millilitres")),
        "cl": (0.01, ("centiliter", "centiliters", "centilitre", "centilitres")),
        "m³": (1000.0, ("m3", "cubic meter", "cubic meters", "cubic metre", "cubic metres")),
        "gal": (3.785411784, ("gallon", "gallons", "us gallon", "us gallons")),
        "imp gal": (4.54609, ("imperial gallon", "imperial gallons")),
        "qt": (0.946352946, ("quart", "quarts")),
        "pt": (0.473176473, ("pint", "pints")),
        "cup": (0.2365882365, ("cups",)),
        "fl oz": (0.0295735295625, ("floz", "fluid ounce", "fluid ounces")),
        "tbsp": (0.01478676478125, ("tablespoon", "tablespoons")),
        "tsp": (0.00492892159375, ("teaspoon", "teaspoons")),
    },
    "speed": {
        "m/s": (1.0, ("mps", "meter per second", "meters per second", "metres per second")),
        "km/h": (1 / 3.6, ("kmh", "kph", "kilometer per hour", "kilometers per hour", "kilometres per hour")),
        "mph": (0.44704, ("mi/h", "mile per hour", "miles per hour")),
        "kn": (1852 / 3600, ("kt", "knot", "knots")),
        "ft/s": (0.3048, ("fps", "foot per second", "feet per second")),
    },
    "time": {
        "s": (1.0, ("sec", "secs", "second", "seconds")),
        "ms": (0.001, ("millisecond", "milliseconds")),
        "min": (60.0, ("mins", "minute", "minutes")),
        "h": (3600.0, ("hr", "hrs", "hour", "hours")),
        "d": (86400.0, ("day", "days")),
        "wk": (604800.0, ("week", "weeks")),
        # A Julian year (365.25 days), the usual choice when no calendar is involved.
        "yr": (31557600.0, ("year", "years")),
    },
    "area": {
        "m²": (1.0, ("m2", "sq m", "square meter", "square meters", "square metre", "square metres")),
        "km²": (1e6, ("km2", "sq km", "square kilometer", "square kilometers", "square kilometres")),
        "cm²": (1e-4, ("cm2", "sq cm", "square centimeter", "square centimeters")),
        "ha": (1e4, ("hectare", "hectares")),
        "acre": (4046.8564224, ("acres", "ac")),
        "ft²": (0.09290304, ("ft2", "sq ft", "square foot", "square feet")),
        "mi²": (2589988.110336, ("mi2", "sq mi", "square mile", "square miles")),
    },
    "data": {
        "B": (1.0, ("byte", "bytes")),
        "bit": (0.125, ("bits",)),
        "kB": (1e3, ("kilobyte", "kilobytes")),
        "MB": (1e6, ("megabyte", "megabytes")),
        "GB": (1e9, ("gigabyte", "gigabytes")),
        "TB": (1e12, ("terabyte", "terabytes")),
        "KiB": (1024.0, ("kibibyte", "kibibytes")),
        "MiB": (1024.0**2, ("mebibyte", "mebibytes")),
        "GiB": (1024.0**3, ("gibibyte", "gibibytes")),
    },
}
_TEMPERATURE = {
    "°C": ("c", "celsius", "centigrade", "degc", "deg c"),
    "°F": ("f", "fahrenheit", "degf", "deg f"),
    "K": ("k", "kelvin", "kelvins"),
}


def _build_aliases() -> dict[str, tuple[str, str]]:
    aliases: dict[str, tuple[str, str]] = {}
    for quantity, units in _UNITS.items():
        for symbol, (_factor, names) in units.items():
            for name in (symbol, *names):
                aliases[name.lower()] = (quantity, symbol)
    for symbol, names in _TEMPERATURE.items():
        for name in (symbol, *names):
            aliases[name.lower()] = ("temperature", symbol)
    return aliases


ALIASES = _build_aliases()


def resolve_unit(name: str) -> tuple[str, str]:
    """Map what a person typed (``"miles"``, ``"°F"``, ``"km/h"``) to (quantity, symbol).

    Raises:
        ValueError: when the unit is unknown.
    """
    key = re.sub(r"\s+", " ", name.strip().lower().replace("°", ""))
    key = re.sub(r"^(?:degrees?|deg) ", "", key)
    if key in ALIASES:
        return ALIASES[key]
    raise ValueError(f"unknown unit {name.strip()!r}")


def _to_kelvin(value: float, symbol: str) -> float:
    if symbol == "°C":
        return value + 273.15
    if symbol == "°F":
        return (value - 32) * 5 / 9 + 273.15
    return value


def _from_kelvin(value: float, symbol: str) -> float:
    if symbol == "°C":
        return value - 273.15
    if symbol == "°F":
        return (value - 273.15) * 9 / 5 + 32
    return value


def convert(value: float, from_unit: str, to_unit: str) -> tuple[float, str, str]:
    """Convert ``value`` and return (result, from symbol, to symbol).

    Raises:
        ValueError: for unknown units, units of different quantities, or a temperature
            below absolute zero.
    """
    src_quantity, src = resolve_unit(from_unit)
    dst_quantity, dst = resolve_unit(to_unit)
    if src_quantity != dst_quantity:
        raise ValueError(f"cannot convert {src_quantity} ({src}) to {dst_quantity} ({dst})")
    if src_quantity == "temperature":
        kelvin = _to_kelvin(value, src)
        if kelvin < 0:
            raise ValueError(f"{format_number(value)} {src} is below absolute zero")
        return _from_kelvin(kelvin, dst), src, dst
    units = _UNITS[src_quantity]
    return value * units[src][0] / units[dst][0], src, dst


def _round_significant(value: float, digits: int = 6) -> float:
    return float(f"{value:.{digits}g}")


@tool
def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a value between units of length, mass, volume, temperature, speed, time, area or data.

    Units may be symbols or names, e.g. km, miles, ft, kg, lb, °C, fahrenheit, l, gallons,
    km/h, mph, hours, acres, GB.
    """
    result, src, dst = convert(value, from_unit, to_unit)
    return f"{format_number(value)} {src} = {format_number(_round_significant(result))} {dst}"
