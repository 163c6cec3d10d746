#!/usr/bin/env python3
"""Independent reference values for platform/tools/*.test.ts.

Written separately from the TypeScript (Python 3 standard library only, no
third-party packages) and run once; its printed numbers are pasted into the
tests with a comment naming this script. Re-run with:

    python3 platform/tools/reference/numeric_reference.py

Sources of truth used here:
  * math.erfc (C libm) for the normal CDF: Phi(x) = erfc(-x/sqrt2)/2, which
    keeps relative precision in both tails (statistics.NormalDist.cdf uses
    1 + erf(...) and loses it in the lower tail, so it is not used for cdf).
  * statistics.NormalDist().inv_cdf (Wichura's AS241) for the quantile.
  * Straightforward re-implementations of the smoothing recursions of
    Hyndman & Athanasopoulos, FPP3 section 8, with the same initial states as
    forecast.ts, and brute-force grid searches for the fitted parameters.
  * The closed-form forecast-variance expressions of FPP3 Table 8.8 (the
    TypeScript sums the c_j^2 terms instead).
"""
import json
import math
from statistics import NormalDist

N = NormalDist()
SQRT2 = math.sqrt(2.0)


def phi_cdf(x):
    return 0.5 * math.erfc(-x / SQRT2)


# AirPassengers (Box & Jenkins Series G; R datasets::AirPassengers), 1949-1960.
AIR = [
    112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118,
    115, 126, 141, 135, 125, 149, 170, 170, 158, 133, 114, 140,
    145, 150, 178, 163, 172, 178, 199, 199, 184, 162, 146, 166,
    171, 180, 193, 181, 183, 218, 230, 242, 209, 191, 172, 194,
    196, 196, 236, 235, 229, 243, 264, 272, 237, 211, 180, 201,
    204, 188, 235, 227, 234, 264, 302, 293, 259, 229, 203, 229,
    242, 233, 267, 269, 270, 315, 364, 347, 312, 274, 237, 278,
    284, 277, 317, 313, 318, 374, 413, 405, 355, 306, 271, 306,
    315, 301, 356, 348, 355, 422, 465, 467, 404, 347, 305, 336,
    340, 318, 362, 348, 363, 435, 491, 505, 404, 359, 310, 337,
    360, 342, 406, 396, 420, 472, 548, 559, 463, 407, 362, 405,
    417, 391, 419, 461, 472, 535, 622, 606, 508, 461, 390, 432,
]
assert len(AIR) == 144 and sum(AIR) == 40363


def ses(y, a):
    l = y[0]
    sse = 0.0
    fitted = [None]
    for t in range(1, len(y)):
        fitted.append(l)
        e = y[t] - l
        sse += e * e
        l = a * y[t] + (1 - a) * l
    return {"sse": sse, "level": l, "fitted": fitted, "n": len(y) - 1}


def holt(y, a, b):
    l, tr = y[1], y[1] - y[0]
    sse = 0.0
    fitted = [None, None]
    for t in range(2, len(y)):
        f = l + tr
        fitted.append(f)
        sse += (y[t] - f) ** 2
        nl = a * y[t] + (1 - a) * f
        tr = b * (nl - l) + (1 - b) * tr
        l = nl
    return {"sse": sse, "level": l, "trend": tr, "fitted": fitted, "n": len(y) - 2}


def hw(y, m, kind, a, b, g):
    l0 = sum(y[:m]) / m
    l1 = sum(y[m:2 * m]) / m
    l, tr = l0, (l1 - l0) / m
    # s[j] is the seasonal index for observations t with t % m == j.
    s = [(y[j] - l) if kind == "add" else (y[j] / l) for j in range(m)]
    sse = 0.0
    fitted = []
    for t, yt in enumerate(y):
        sp = s[t % m]
        base = l + tr
        f = base + sp if kind == "add" else base * sp
        fitted.append(f)
        sse += (yt - f) ** 2
        if kind == "add":
            nl = a * (yt - sp) + (1 - a) * base
            s[t % m] = g * (yt - base) + (1 - g) * sp
        else:
            nl = a * yt / sp + (1 - a) * base
            s[t % m] = g * yt / base + (1 - g) * sp
        tr = b * (nl - l) + (1 - b) * tr
        l = nl
    n = len(y)
    seasonal_next = [s[(n + i) % m] for i in range(m)]
    return {"sse": sse, "level": l, "trend": tr, "seasonal": seasonal_next, "fitted": fitted, "n": n}


def hw_forecast(r, m, kind, h):
    out = []
    for i in range(1, h + 1):
        sidx = r["seasonal"][(i - 1) % m]
        base = r["level"] + i * r["trend"]
        out.append(base + sidx if kind == "add" else base * sidx)
    return out


def var_mult_closed(method, a, bstar, g, m, h):
    """FPP3 Table 8.8 with beta = alpha*beta_star (state-space form)."""
    b = a * bstar
    if method == "ses":
        return 1 + a * a * (h - 1)
    base = 1 + (h - 1) * (a * a + a * b * h + b * b * h * (2 * h - 1) / 6.0)
    if method == "holt":
        return base
    k = (h - 1) // m
    return base + g * k * (2 * a + g + b * m * (k + 1))


out = {}

# --- normal distribution -------------------------------------------------
xs = [-37.5, -30, -20, -10, -8, -6, -5, -4, -3.5, -3.0000001, -3, -2.9999999, -2.5,
      -1.959963984540054, -1, -0.5, -1e-3, 0, 1e-8, 0.3, 1, 1.6448536269514722,
      1.96, 2.5, 2.9999999, 3, 3.0000001, 4, 5, 6, 8]
out["normal_cdf"] = [[x, phi_cdf(x)] for x in xs]
out["normal_upper_tail"] = [[x, phi_cdf(-x)] for x in [0.5, 2, 3, 4.5, 7, 10, 20, 37]]
ps = [1e-300, 1e-100, 1e-20, 1e-10, 1e-5, 0.001, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3,
      0.4, 0.49, 0.5, 0.51, 0.6, 0.8, 0.9, 0.95, 0.975, 0.99, 0.999, 1 - 1e-10]
out["normal_quantile"] = [[p, N.inv_cdf(p)] for p in ps]

# --- two-proportion tests (cross-check of the published R/statsmodels values) ---
def ztest(x1, n1, x2, n2, level=0.95):
    p1, p2 = x1 / n1, x2 / n2
    p = (x1 + x2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    z = (p2 - p1) / se
    seu = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    zc = N.inv_cdf(0.5 + level / 2)
    return {"z": z, "p_two": math.erfc(abs(z) / SQRT2), "p_greater": phi_cdf(-z),
            "ci": [p2 - p1 - zc * seu, p2 - p1 + zc * seu]}

out["ztest_5_83_12_99"] = ztest(5, 83, 12, 99)
out["ztest_5_83_12_99_90"] = ztest(5, 83, 12, 99, 0.90)


def sample_size(p1, p2, alpha, power, sides=2):
    za = N.inv_cdf(1 - alpha / sides)
    zb = N.inv_cdf(power)
    pb = (p1 + p2) / 2
    return ((za * math.sqrt(2 * pb * (1 - pb)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) / (p2 - p1)) ** 2

out["sample_size"] = {
    "0.5_0.75_a05_p90": sample_size(0.5, 0.75, 0.05, 0.9),
    "0.5_0.501_a001_p90": sample_size(0.5, 0.501, 0.001, 0.9),
    "0.9_1.0_a05_p80": sample_size(0.9, 1.0, 0.05, 0.8),
    "0.05_0.055_a05_p80": sample_size(0.05, 0.055, 0.05, 0.8),
    "0.05_0.055_a05_p80_one_sided": sample_size(0.05, 0.055, 0.05, 0.8, 1),
}

# --- exponential smoothing on AirPassengers, fixed parameters ---------------
z95 = N.inv_cdf(0.975)
r = ses(AIR, 0.3)
sig = math.sqrt(r["sse"] / r["n"])
out["ses_air_a03"] = {
    "sse": r["sse"], "level": r["level"], "fitted_1_to_4": r["fitted"][1:5],
    "sigma": sig,
    "upper_h1_h3_h12": [r["level"] + z95 * sig * math.sqrt(var_mult_closed("ses", 0.3, 0, 0, 0, h)) for h in (1, 3, 12)],
}
r = holt(AIR, 0.8, 0.2)
sig = math.sqrt(r["sse"] / r["n"])
fc = [r["level"] + h * r["trend"] for h in range(1, 13)]
out["holt_air_a08_b02"] = {
    "sse": r["sse"], "level": r["level"], "trend": r["trend"], "forecast_h1_h12": [fc[0], fc[11]],
    "sigma": sig,
    "lower_h1_h5_h12": [fc[h - 1] - z95 * sig * math.sqrt(var_mult_closed("holt", 0.8, 0.2, 0, 0, h)) for h in (1, 5, 12)],
}
for kind in ("add", "mul"):
    r = hw(AIR, 12, kind, 0.3, 0.1, 0.2)
    fc = hw_forecast(r, 12, kind, 24)
    entry = {"sse": r["sse"], "level": r["level"], "trend": r["trend"], "seasonal": r["seasonal"],
             "fitted_0_1_143": [r["fitted"][0], r["fitted"][1], r["fitted"][143]],
             "forecast_1_12_13_24": [fc[0], fc[11], fc[12], fc[23]]}
    if kind == "add":
        # sigma^2 = SSE / (n - (m + 1)) with all three constants fixed.
        sig = math.sqrt(r["sse"] / (r["n"] - 13))
        entry["sigma"] = sig
        entry["upper_h1_h12_h13_h24"] = [fc[h - 1] + z95 * sig * math.sqrt(var_mult_closed("hw", 0.3, 0.1, 0.2, 12, h)) for h in (1, 12, 13, 24)]
    out["hw_%s_air_030_010_020" % kind] = entry

# Variance multipliers straight from the closed forms, for a direct comparison.
out["var_mult_closed"] = {
    "ses_a05_h1_h2_h10": [var_mult_closed("ses", 0.5, 0, 0, 0, h) for h in (1, 2, 10)],
    "holt_a06_b03_h1_h2_h7": [var_mult_closed("holt", 0.6, 0.3, 0, 0, h) for h in (1, 2, 7)],
    "hw_a04_b02_g03_m4_h_1_4_5_9_13": [var_mult_closed("hw", 0.4, 0.2, 0.3, 4, h) for h in (1, 4, 5, 9, 13)],
}

# --- brute-force fitted parameters (upper bounds on the optimal SSE) -------
best = min((ses(AIR, i / 2000)["sse"], i / 2000) for i in range(0, 2001))
out["ses_air_grid"] = {"step": 0.0005, "sse": best[0], "alpha": best[1]}
best = min((holt(AIR, i / 100, j / 100)["sse"], i / 100, j / 100) for i in range(101) for j in range(101))
out["holt_air_grid"] = {"step": 0.01, "sse": best[0], "alpha": best[1], "beta": best[2]}
for kind in ("add", "mul"):
    best = min((hw(AIR, 12, kind, i / 20, j / 20, k / 20)["sse"], i / 20, j / 20, k / 20)
               for i in range(21) for j in range(21) for k in range(21))
    out["hw_%s_air_grid" % kind] = {"step": 0.05, "sse": best[0], "alpha": best[1], "beta": best[2], "gamma": best[3]}

# A short made-up demand series (not data from any source) whose SES and Holt
# optima are interior, so the fit is a genuine interior minimisation.
DEMO = [50, 52, 47, 55, 53, 49, 58, 54, 51, 57, 60, 55, 59, 62, 58, 61, 65, 60, 64, 66]
best = min((ses(DEMO, i / 10000)["sse"], i / 10000) for i in range(0, 10001))
out["ses_demo_grid"] = {"step": 0.0001, "sse": best[0], "alpha": best[1]}
best = min((holt(DEMO, i / 400, j / 400)["sse"], i / 400, j / 400) for i in range(401) for j in range(401))
out["holt_demo_grid"] = {"step": 0.0025, "sse": best[0], "alpha": best[1], "beta": best[2]}

print(json.dumps(out, indent=1))
