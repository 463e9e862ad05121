"""The shipment-analysis scenario: a deterministic CSV of shipments and the cell that analyses it.

make_csv(rows, seed) returns the same bytes for the same arguments on every machine (its own
random.Random, no clock, no locale): one row per shipment with the carrier, the route, the dates
promised and delivered, and what happened to it. ANALYSIS is the one cell every peer runs on it,
in the folder that holds shipments.csv: it counts the exceptions per carrier (late deliveries,
damaged and lost shipments), prints the table and saves a chart, exceptions.png, beside the CSV.
"""

import datetime
import io
import random

CSV_NAME = "shipments.csv"
CHART_NAME = "exceptions.png"

CARRIERS = [  # (name, share of shipments, probability late, damaged, lost)
    ("Northwind Freight", 0.22, 0.06, 0.010, 0.002),
    ("Blue Heron Logistics", 0.18, 0.11, 0.006, 0.004),
    ("Cascade Parcel", 0.16, 0.04, 0.015, 0.001),
    ("Ironbridge Haulage", 0.14, 0.15, 0.008, 0.006),
    ("Meridian Express", 0.12, 0.08, 0.004, 0.003),
    ("Saltmarsh Carriers", 0.10, 0.19, 0.020, 0.009),
    ("Tern & Co", 0.08, 0.05, 0.003, 0.002),
]
CITIES = ["Rotterdam", "Hamburg", "Antwerp", "Lyon", "Milan", "Gdansk", "Porto", "Vienna",
          "Prague", "Bilbao", "Aarhus", "Tallinn"]
SERVICES = [("economy", 6), ("standard", 4), ("express", 2)]


def make_csv(rows=60000, seed=7):
    """The CSV as bytes: `rows` shipments drawn from a random.Random(seed)."""
    rng = random.Random(seed)
    names = [c[0] for c in CARRIERS]
    weights = [c[1] for c in CARRIERS]
    by_name = {c[0]: c for c in CARRIERS}
    start = datetime.date(2026, 1, 1)
    out = io.StringIO()
    out.write("shipment_id,carrier,origin,destination,service,weight_kg,cost_eur,"
              "ship_date,promised_date,delivered_date,status\n")
    for i in range(rows):
        carrier = rng.choices(names, weights)[0]
        _, _, p_late, p_damaged, p_lost = by_name[carrier]
        origin, destination = rng.sample(CITIES, 2)
        service, days = SERVICES[rng.randrange(len(SERVICES))]
        weight = round(rng.lognormvariate(2.5, 0.9), 1)
        cost = round(8 + weight * rng.uniform(0.4, 0.9) + (12 if service == "express" else 0), 2)
        shipped = start + datetime.timedelta(days=rng.randrange(300))
        promised = shipped + datetime.timedelta(days=days)
        roll = rng.random()
        if roll < p_lost:
            status, delivered = "lost", ""
        else:
            status = "damaged" if roll < p_lost + p_damaged else "delivered"
            delay = rng.randint(1, 6) if rng.random() < p_late else -rng.randint(0, 1)
            delivered = (promised + datetime.timedelta(days=delay)).isoformat()
        out.write("SHP%07d,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n" % (
            i + 1, carrier, origin, destination, service, weight, cost, shipped.isoformat(),
            promised.isoformat(), delivered, status))
    return out.getvalue().encode()


# The cell: plain pandas and matplotlib, reading and writing the current folder.
ANALYSIS = r'''
import pandas as pd
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

df = pd.read_csv("shipments.csv", parse_dates=["ship_date", "promised_date", "delivered_date"])
df["late"] = df["delivered_date"] > df["promised_date"]
df["damaged"] = df["status"] == "damaged"
df["lost"] = df["status"] == "lost"
per_carrier = df.groupby("carrier")[["late", "damaged", "lost"]].sum()
per_carrier["shipments"] = df.groupby("carrier").size()
per_carrier["exception_rate"] = per_carrier[["late", "damaged", "lost"]].sum(axis=1) / per_carrier["shipments"]
per_carrier = per_carrier.sort_values("exception_rate", ascending=False)

fig, ax = plt.subplots(figsize=(8, 4.5))
(per_carrier[["late", "damaged", "lost"]].div(per_carrier["shipments"], axis=0) * 100).plot.barh(
    stacked=True, ax=ax, color=["#e6a23c", "#909399", "#c0392b"])
ax.invert_yaxis()
ax.set_xlabel("exceptions, % of shipments")
ax.set_title("Shipment exceptions per carrier (%d shipments)" % len(df))
fig.tight_layout()
fig.savefig("exceptions.png", dpi=100)
plt.close(fig)
print(per_carrier.to_string())
'''
