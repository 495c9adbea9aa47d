"""Static annual carbon intensity: the last resort of the fallback chain, always labelled ``static``.

Lookup order for a region without a configured ``staticGramsPerKwh``:

1. its grid zone, as a country: exact code, then the part before the first '-' (Electricity Maps
   sub-zones such as ``SE-SE3`` or ``US-CAL-CISO`` fall back to their country);
2. its name as a cloud region (GCP, AWS, Azure names);
3. the global average.

Sources (figures, copied with their provenance):

- Countries: Ember / Our World in Data, carbon intensity of electricity 2021 (gCO2eq/kWh, life-cycle),
  as shipped in codecarbon's ``codecarbon/data/private_infra/global_energy_mix.json`` (MIT).
- Cloud regions: codecarbon's ``codecarbon/data/cloud/impact.csv`` (MIT), 2019-era figures from the
  cloud providers' and national publications (GCP: Google's region carbon data; AWS/Azure: eGRID and
  national factors). Coarse and dated; they exist so that a region is never planned on a silent zero.
- Global: 475 gCO2/kWh, the IEA's 2019 world average (also codecarbon's default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

GLOBAL_AVERAGE_G_PER_KWH = 475.0

COUNTRY_G_PER_KWH: Mapping[str, float] = {
    "AE": 461.8, "AR": 357.8, "AT": 147.6, "AU": 531.2, "BE": 156.9, "BG": 354.3, "BR": 158.6,
    "CA": 128.5, "CH": 47.1, "CL": 416.9, "CN": 544.4, "CO": 181.1, "CZ": 405.6, "DE": 365.5,
    "DK": 221.4, "EE": 481.2, "ES": 193.9, "FI": 145.5, "FR": 67.4, "GB": 268.3, "GR": 353.3,
    "HK": 684.0, "HR": 211.0, "HU": 233.0, "ID": 623.2, "IE": 363.6, "IL": 548.0, "IN": 637.2,
    "IS": 28.6, "IT": 340.8, "JP": 478.5, "KR": 458.1, "LT": 244.6, "LU": 187.0, "LV": 223.9,
    "MX": 399.9, "MY": 548.6, "NL": 388.7, "NO": 27.6, "NZ": 132.4, "PL": 660.1, "PT": 219.1,
    "QA": 489.8, "RO": 255.9, "SA": 571.3, "SE": 45.8, "SG": 487.9, "SI": 238.6, "SK": 169.6,
    "TH": 506.6, "TR": 430.4, "TW": 573.3, "US": 379.3, "UY": 147.3, "ZA": 715.7,
}  # fmt: skip

CLOUD_REGION_G_PER_KWH: Mapping[str, float] = {
    # GCP
    "asia-east1": 438.2, "asia-east2": 626.0, "asia-northeast1": 524.0, "asia-northeast2": 524.0,
    "asia-northeast3": 540.0, "asia-south1": 723.0, "asia-southeast1": 478.2, "asia-southeast2": 772.0,
    "australia-southeast1": 645.2, "europe-north1": 41.6, "europe-west1": 62.7, "europe-west2": 118.2,
    "europe-west3": 124.4, "europe-west4": 184.9, "europe-west6": 29.0, "northamerica-northeast1": 143.0,
    "southamerica-east1": 14.2, "us-central1": 105.4, "us-east1": 405.0, "us-east4": 226.0,
    "us-west1": 12.9, "us-west2": 111.6, "us-west3": 420.8, "us-west4": 427.2,
    # AWS
    "us-east-2": 568.2, "us-east-1": 367.8, "us-west-1": 240.6, "us-west-2": 297.6, "ap-east-1": 702.0,
    "ap-south-1": 920.0, "ap-northeast-3": 516.0, "ap-northeast-2": 517.0, "ap-southeast-1": 419.0,
    "ap-southeast-2": 802.0, "ap-northeast-1": 516.0, "ca-central-1": 20.0, "cn-north-1": 680.0,
    "cn-northwest-1": 680.0, "eu-central-1": 615.0, "eu-west-1": 617.0, "eu-west-2": 623.0,
    "eu-west-3": 105.0, "eu-north-1": 47.0, "sa-east-1": 205.0, "us-gov-east-1": 568.2,
    "us-gov-west-1": 297.6,
    # Azure
    "eastasia": 702.0, "southeastasia": 419.0, "centralus": 736.6, "eastus": 367.8, "eastus2": 367.8,
    "westus": 240.6, "northcentralus": 568.2, "southcentralus": 460.4, "northeurope": 617.0,
    "westeurope": 569.0, "japanwest": 516.0, "japaneast": 516.0, "brazilsouth": 205.0,
    "australiaeast": 802.0, "australiasoutheast": 805.0, "southindia": 920.0, "centralindia": 920.0,
    "westindia": 920.0, "canadacentral": 69.3, "canadaeast": 20.0, "uksouth": 623.0, "ukwest": 623.0,
    "westcentralus": 297.6, "westus2": 297.6, "koreacentral": 517.0, "koreasouth": 517.0,
    "francecentral": 105.0, "francesouth": 105.0, "australiacentral": 900.0, "australiacentral2": 900.0,
    "southafricanorth": 1009.0, "southafricawest": 1009.0,
}  # fmt: skip


@dataclass(frozen=True)
class StaticFactor:
    grams_per_kwh: float
    basis: str
    """Where the figure comes from, for messages: 'configured staticGramsPerKwh', ..."""


def default_static_factor(zone: str | None, region_name: str) -> StaticFactor:
    if zone:
        z = zone.strip().upper()
        for key in (z, z.split("-", 1)[0]):
            if key in COUNTRY_G_PER_KWH:
                return StaticFactor(COUNTRY_G_PER_KWH[key], f"2021 country average for {key} (Ember/OWID)")
    name = region_name.strip().lower()
    if name in CLOUD_REGION_G_PER_KWH:
        return StaticFactor(CLOUD_REGION_G_PER_KWH[name], f"cloud region {name} (codecarbon, 2019-era)")
    return StaticFactor(GLOBAL_AVERAGE_G_PER_KWH, "global average (IEA 2019)")
