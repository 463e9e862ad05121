#!/usr/bin/python3
"""The default environment (issue 20, "The default environment covers the usual work"),
black-box against a real server.

Usage:
  test_packages.py --pycell PATH [unittest arguments]

src/kernel/packages.json lists every package a session of any pool can import. A real
`pycell serve` with its default pool starts; in one session, every listed module is imported in
turn, timed, and its version read from inside the sandbox (importlib.metadata, or the module's
__version__ where Debian ships no metadata). Then the packages do small real work in /mnt/data:
an .xlsx written by xlsxwriter read back by openpyxl and pandas, an .ods by odfpy, a plotly chart
and a folium map as HTML, a reportlab PDF read by PyMuPDF and pypdf, a SQLite file through
SQLAlchemy and pandas, HDF5 through h5py and PyTables, a numba function compiled and cached, images by
OpenCV, scikit-image and wordcloud, a GeoJSON file by geopandas, an xgboost model, and requests
failing fast because a session has no network. The list must also agree with
scripts/install-deps.sh (every Debian package there) and docs/packages.md (every package named).

PYCELL_PACKAGES_REPORT=FILE writes what the session reported (per import name: version, import
seconds in the list's order, module file) as JSON; docs/packages.md's table comes from
bench/preload_cost.py --imports-report instead (each import alone, with memory). Only the
standard library.
"""

import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycell_server  # noqa: E402  (tests/pycell_server.py)

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES_JSON = os.path.join(SOURCE_DIR, "src", "kernel", "packages.json")
INSTALL_DEPS = os.path.join(SOURCE_DIR, "scripts", "install-deps.sh")
PACKAGES_DOC = os.path.join(SOURCE_DIR, "docs", "packages.md")
RUNTIME_DIR = "/run/pycell-packages-tests"

PYCELL = None
WORK_DIR = None
SERVER = None
ADMIN = None
# One session for both tests that run code: the imports are paid once (unittest runs the import
# test first, by name; run alone, the work test imports what it uses itself).
SESSION_ID = None

with open(PACKAGES_JSON) as f:
    SPEC = json.load(f)

# Imports every listed module (and its listed submodules) in turn. A line goes out before each import, so that if one ends
# the session (a crash in a C extension, the memory limit) the record's stdout names it.
IMPORT_ALL = r"""
import importlib, importlib.metadata, json, time
_entries = json.loads(%r)
_report = {}
for _e in _entries:
    print("importing", _e["import"], flush=True)
    _t = time.perf_counter()
    try:
        _m = importlib.import_module(_e["import"])
        for _sub in _e.get("submodules", []):
            importlib.import_module(_sub)
        _seconds = time.perf_counter() - _t
        if _e["distribution"]:
            _version = importlib.metadata.version(_e["distribution"])
        else:
            _version = getattr(_m, "__version__", None)
        _report[_e["import"]] = {"ok": True, "version": _version, "seconds": round(_seconds, 3),
                                 "file": getattr(_m, "__file__", None)}
    except Exception as _x:
        _report[_e["import"]] = {"ok": False, "error": "%%s: %%s" %% (type(_x).__name__, _x),
                                 "seconds": round(time.perf_counter() - _t, 3)}
print("REPORT " + json.dumps(_report))
"""

# Small real work, one cell each: (name, code). Each cell prints lines the test checks; any
# exception fails the cell (status "error"), and the test shows its traceback.
WORK = [
    ("excel", r"""
import xlsxwriter, openpyxl, pandas as pd
book = xlsxwriter.Workbook("/mnt/data/sales.xlsx")
sheet = book.add_worksheet("sales")
sheet.write_row(0, 0, ["region", "amount"])
for i, (region, amount) in enumerate([("north", 10), ("south", 5), ("north", 7)], start=1):
    sheet.write_row(i, 0, [region, amount])
sheet.write_formula("B5", "=SUM(B2:B4)", None, 22)
chart = book.add_chart({"type": "column"})
chart.add_series({"values": "=sales!$B$2:$B$4"})
sheet.insert_chart("D2", chart)
book.close()
ws = openpyxl.load_workbook("/mnt/data/sales.xlsx")["sales"]
print("openpyxl", ws["A2"].value, ws["B3"].value, ws["B5"].value, len(ws._charts))
df = pd.read_excel("/mnt/data/sales.xlsx", nrows=3)
print("pandas", df.groupby("region").amount.sum().to_dict())
df.to_excel("/mnt/data/sales.ods", engine="odf", index=False)
back = pd.read_excel("/mnt/data/sales.ods", engine="odf")
print("ods", back.amount.tolist())
"""),
    ("html", r"""
import plotly.graph_objects as go, folium, markdown
fig = go.Figure(go.Bar(x=["north", "south"], y=[17, 5]))
fig.write_html("/mnt/data/chart.html", include_plotlyjs=True)
html = open("/mnt/data/chart.html").read()
print("plotly", '"north"' in html, "Plotly.newPlot" in html, len(html) > 1_000_000)
m = folium.Map(location=[48.85, 2.35], zoom_start=12)
folium.Marker([48.86, 2.34], popup="depot").add_to(m)
m.save("/mnt/data/map.html")
print("folium", "depot" in open("/mnt/data/map.html").read())
print("markdown", markdown.markdown("# Report\n\n*late* shipments"))
"""),
    ("pdf", r"""
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas
import fitz, pypdf
c = canvas.Canvas("/mnt/data/report.pdf", pagesize=A4)
c.drawString(72, 770, "Quarterly shipments: 22 late")
c.showPage()
c.drawString(72, 770, "Appendix")
c.save()
doc = fitz.open("/mnt/data/report.pdf")
print("fitz", doc.page_count, doc[0].get_text().strip())
pix = doc[0].get_pixmap(dpi=50)
pix.save("/mnt/data/page1.png")
print("pixmap", pix.width > 0 and pix.height > 0)
print("pypdf", len(pypdf.PdfReader("/mnt/data/report.pdf").pages))
"""),
    ("data", r"""
import sqlalchemy as sa, pandas as pd, numpy as np, h5py, chardet, tqdm, io
engine = sa.create_engine("sqlite:////mnt/data/ledger.db")
pd.DataFrame({"account": ["a", "b", "a"], "amount": [1.5, 2.0, 3.0]}).to_sql("ledger", engine, index=False)
with engine.connect() as conn:
    total = conn.execute(sa.text("select sum(amount) from ledger where account = 'a'")).scalar()
print("sqlalchemy", total)
with h5py.File("/mnt/data/cube.h5", "w") as f:
    f.create_dataset("cube", data=np.arange(24).reshape(2, 3, 4))
with h5py.File("/mnt/data/cube.h5") as f:
    print("h5py", f["cube"].shape, int(f["cube"][1, 2, 3]))
pd.DataFrame({"x": range(5)}).to_hdf("/mnt/data/frame.h5", key="frame", format="table", data_columns=True)
print("tables", pd.read_hdf("/mnt/data/frame.h5", "frame", where="x > 2").x.tolist())
print("chardet", chardet.detect("Grüße aus Köln, Übersee".encode("utf-8"))["encoding"])
sink = io.StringIO()
print("tqdm", sum(tqdm.tqdm(range(100), file=sink)), "100/100" in sink.getvalue())
"""),
    ("compute", r"""
import numba, numpy as np, xgboost
@numba.njit(cache=True)  # The cache goes to a writable folder (/usr is read-only): HOME=/tmp.
def running_total(values):
    total = 0.0
    for v in values:
        total += v
    return total
print("numba", running_total(np.arange(1_000_001, dtype=np.float64)))
cache = running_total._cache._cache_path
print("numba_cache", cache.startswith("/tmp/"), any(n.endswith(".nbi") for n in os.listdir(cache)))
rng = np.random.default_rng(0)
X = rng.normal(size=(400, 3))
y = (X[:, 0] + X[:, 1] > 0).astype(int)
model = xgboost.XGBClassifier(n_estimators=20, max_depth=2)
model.fit(X, y)
print("xgboost", (model.predict(X) == y).mean() > 0.9)
"""),
    ("images", r"""
import cv2, numpy as np, skimage.filters, skimage.io, wordcloud, matplotlib.pyplot as plt
from matplotlib_venn import venn2
image = np.zeros((64, 64), np.uint8)
cv2.rectangle(image, (16, 16), (47, 47), 255, -1)
cv2.imwrite("/mnt/data/square.png", image)
back = cv2.imread("/mnt/data/square.png", cv2.IMREAD_GRAYSCALE)
print("cv2", back.shape, int(back.sum() // 255))
edges = skimage.filters.sobel(skimage.io.imread("/mnt/data/square.png") / 255.0)
print("skimage", bool(edges[16, 30] > 0), float(edges[32, 32]))
cloud = wordcloud.WordCloud(width=200, height=100, random_state=1).generate(
    "late late late shipment shipment carrier")
cloud.to_file("/mnt/data/cloud.png")
print("wordcloud", sorted(cloud.words_)[:2])
venn2(subsets=(3, 2, 1), set_labels=("north", "south"))
plt.savefig("/mnt/data/venn.png")
print("venn", os.path.getsize("/mnt/data/venn.png") > 0)
"""),
    ("geo", r"""
import geopandas as gpd, shapely.geometry as geom
depots = gpd.GeoDataFrame({"name": ["a", "b"]},
                          geometry=[geom.Point(2.35, 48.85), geom.Point(2.29, 48.86)], crs="EPSG:4326")
depots.to_file("/mnt/data/depots.geojson", driver="GeoJSON")
back = gpd.read_file("/mnt/data/depots.geojson")
print("geopandas", back.name.tolist(), back.crs.to_epsg())
metres = back.to_crs("EPSG:2154")
print("distance_km", round(metres.geometry[0].distance(metres.geometry[1]) / 1000, 1))
print("shapely", geom.Polygon([(0, 0), (2, 0), (2, 2), (0, 2)]).area)
"""),
    ("no_network", r"""
import requests, time
started = time.monotonic()
try:
    requests.get("http://example.com/", timeout=5)
    print("requests reached the network")
except requests.exceptions.ConnectionError as e:
    print("requests", "ConnectionError", time.monotonic() - started < 5)
"""),
]

# What each WORK cell must print (regular expressions, each matching one whole line).
EXPECTED = {
    "excel": [r"openpyxl north 5 =SUM\(B2:B4\) 1", r"pandas \{'north': 17, 'south': 5\}",
              r"ods \[10, 5, 7\]"],
    "html": [r"plotly True True True", r"folium True",
             r"markdown <h1>Report</h1>\s*", r"<p><em>late</em> shipments</p>"],
    "pdf": [r"fitz 2 Quarterly shipments: 22 late", r"pixmap True", r"pypdf 2"],
    "data": [r"sqlalchemy 4\.5", r"h5py \(2, 3, 4\) 23", r"tables \[3, 4\]", r"chardet utf-8",
             r"tqdm 4950 True"],
    "compute": [r"numba 500000500000\.0", r"numba_cache True True", r"xgboost True"],
    "images": [r"cv2 \(64, 64\) 1024", r"skimage True 0\.0", r"wordcloud \['carrier', 'late'\]",
               r"venn True"],
    "geo": [r"geopandas \['a', 'b'\] 4326", r"distance_km 4\.5", r"shapely 4\.0"],
    "no_network": [r"requests ConnectionError True"],
}


def runtime_packages():
    """The Debian packages scripts/install-deps.sh installs as RUNTIME_PACKAGES (both lists)."""
    with open(INSTALL_DEPS) as f:
        text = f.read()
    names = []
    for body in re.findall(r"^RUNTIME_PACKAGES\+?=\((.*?)\)", text, re.S | re.M):
        names += re.sub(r"#.*", "", body).split()
    return names


class TestDefaultEnvironment(pycell_server.HttpAssertions, unittest.TestCase):
    def run_cell(self, session_id, code, timeout_s=120):
        record = pycell_server.expect(ADMIN.execute(session_id, code, timeout_s=timeout_s), 200,
                                      "execute")
        self.assertEqual(record["status"], "ok",
                         "the cell failed:\n%s\nstdout:\n%s\nstderr:\n%s\noutputs: %s" %
                         (code, record.get("stdout"), record.get("stderr"),
                          json.dumps(record.get("outputs"))[:3000]))
        return record

    def test_the_list_matches_the_install_script_and_the_docs(self):
        installed = runtime_packages()
        self.assertIn("python3-pandas", installed, "the parse of install-deps.sh found nothing")
        imports = [p["import"] for p in SPEC["packages"]]
        self.assertEqual(len(imports), len(set(imports)), "an import is listed twice")
        for entry in SPEC["packages"]:
            self.assertIn(entry["debian"], installed,
                          "%s is in packages.json but not in install-deps.sh" % entry["debian"])
            self.assertTrue(entry["purpose"], entry)
        with open(PACKAGES_DOC) as f:
            doc = f.read()
        for entry in SPEC["packages"]:
            self.assertIn("`%s`" % entry["import"], doc, "docs/packages.md lacks " + entry["import"])
            self.assertIn("`%s`" % entry["debian"], doc, "docs/packages.md lacks " + entry["debian"])
        for entry in SPEC["not_in_debian"]:
            self.assertNotIn(entry["import"], imports)
            self.assertIn("`%s`" % entry["distribution"], doc,
                          "docs/packages.md lacks " + entry["distribution"])

    def test_every_listed_package_imports_in_a_session(self):
        session_id = SESSION_ID
        code = IMPORT_ALL % json.dumps(SPEC["packages"])
        record = self.run_cell(session_id, code, timeout_s=300)
        lines = [l for l in record["stdout"].splitlines() if l.startswith("REPORT ")]
        self.assertEqual(len(lines), 1, record["stdout"])
        report = json.loads(lines[0][len("REPORT "):])
        path = os.environ.get("PYCELL_PACKAGES_REPORT")
        if path:
            with open(path, "w") as f:
                json.dump(report, f, indent=1, sort_keys=True)
        failed = {name: r["error"] for name, r in report.items() if not r["ok"]}
        self.assertEqual(failed, {}, "imports that failed inside the session")
        self.assertEqual(sorted(report), sorted(p["import"] for p in SPEC["packages"]))
        for entry in SPEC["packages"]:
            got = report[entry["import"]]
            self.assertRegex(got["version"] or "", r"^\d+\.\d+", entry)
            self.assertTrue(got["file"].startswith("/usr/lib/python3/dist-packages/"),
                            "%s comes from %s, not Debian's packages" % (entry["import"],
                                                                         got["file"]))
        slow = sorted(((r["seconds"], n) for n, r in report.items()), reverse=True)[:8]
        print("\nslowest imports (s, in list order, after the zygote's preloads): %s; all: %.1f s, "
              "session peak %d MiB" % (", ".join("%s %.2f" % (n, s) for s, n in slow),
                                       sum(r["seconds"] for r in report.values()),
                                       (record["peak_memory_bytes"] or 0) >> 20), file=sys.stderr)

    def test_packages_do_real_work_in_mnt_data(self):
        session_id = SESSION_ID
        durations = []
        for name, code in WORK:
            with self.subTest(name):
                record = self.run_cell(session_id, "import os\n" + code)
                durations.append("%s %.2f" % (name, record["duration_ms"] / 1000))
                lines = record["stdout"].splitlines()
                for pattern in EXPECTED[name]:
                    self.assertTrue(any(re.fullmatch(pattern, l) for l in lines),
                                    "%s: no line matches %r in\n%s" % (name, pattern,
                                                                       record["stdout"]))
        files = pycell_server.expect(ADMIN.get("/v1/sessions/%s/files" % session_id), 200,
                                     "GET files")
        paths = {f["path"] for f in files["data"]}
        for name in ("sales.xlsx", "sales.ods", "chart.html", "map.html", "report.pdf",
                     "page1.png", "ledger.db", "cube.h5", "frame.h5", "square.png", "cloud.png",
                     "venn.png", "depots.geojson"):
            self.assertIn("/mnt/data/" + name, paths)
        print("\ncells (s): " + ", ".join(durations), file=sys.stderr)


def setUpModule():
    global SERVER, ADMIN, WORK_DIR
    SERVER, WORK_DIR = pycell_server.ServeProcess.in_new_folder(PYCELL, "pycell-packages-tests-",
                                                                RUNTIME_DIR)

    def setup():
        global ADMIN, SESSION_ID
        ADMIN = SERVER.client()
        SESSION_ID = pycell_server.expect(ADMIN.create_session(), 201, "POST /v1/sessions")["id"]

    pycell_server.start_for_module(SERVER, setup)


def tearDownModule():
    pycell_server.stop_for_module(SERVER, WORK_DIR)


if __name__ == "__main__":
    PYCELL, rest = pycell_server.parse_pycell_argument(__doc__)
    unittest.main(argv=[sys.argv[0]] + rest)
