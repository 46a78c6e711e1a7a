"""Each figure plots the numbers of its table: read back from the artists, compared with the CSV files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer

from perceptiongap.model import load_posterior, severity_effect_summary
from perceptiongap.report import figures as F
from perceptiongap.report.palette import PAPER_GROUP_COLOURS, group_colours
from perceptiongap.report.render import merged_rows
from perceptiongap.results import ResultsFolder

# --------------------------------------------------------------------------------------------
# Reading a figure back (matplotlib artists only; nothing of perceptiongap's)


def axis_named(figure, label: str):
    matches = [axis for axis in figure.axes if axis.get_label() == label]
    assert len(matches) == 1, f"no single axes labelled {label!r}: {[a.get_label() for a in figure.axes]}"
    return matches[0]


def severity_of(axis, x: np.ndarray) -> np.ndarray:
    """Category x positions (dodged by less than half a category) -> severity in mm from the tick labels."""
    ticks = {int(round(t)): float(label.get_text()) for t, label in zip(axis.get_xticks(), axis.get_xticklabels())}
    return np.array([ticks[int(round(v))] for v in x])


def errorbar_series(axis) -> dict[str, pd.DataFrame]:
    """label -> (severity_mm, mean, sd) of every errorbar series on ``axis``."""
    series = {}
    for container in axis.containers:
        if not isinstance(container, ErrorbarContainer):
            continue
        line, _, bars = container.lines
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        segments = bars[0].get_segments()
        sd = np.array([(segment[1][1] - segment[0][1]) / 2 for segment in segments])
        series[container.get_label()] = pd.DataFrame({"severity_mm": severity_of(axis, x), "mean": y, "sd": sd})
    return series


def printed_pvalues(figure, panel: str, label: str) -> list[str]:
    """The p-value texts printed over ``panel`` for the series ``label`` (gid ``p|panel|label``), left to right."""
    texts = [t for axis in figure.axes for t in axis.texts if t.get_gid() == f"p|{panel}|{label}"]
    return [t.get_text() for t in sorted(texts, key=lambda t: t.get_position()[0])]


def expected_pvalues(values) -> list[str]:
    """How the figures print p-values, stated independently: two significant digits, no leading zero."""
    out = []
    for p in values:
        if not np.isfinite(p):
            continue
        out.append("<.001" if p < 0.001 else "1" if p >= 0.995 else f"{p:.2g}".lstrip("0"))
    return out


def assert_series_equal(series: pd.DataFrame, rows: pd.DataFrame, mean: str, sd: str) -> None:
    rows = rows.sort_values("severity_mm")
    rows = rows[rows[mean].notna()]
    np.testing.assert_allclose(series["severity_mm"], rows["severity_mm"])
    np.testing.assert_allclose(series["mean"], rows[mean], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(series["sd"], rows[sd].fillna(0), rtol=1e-6, atol=1e-9)


@pytest.fixture(scope="module")
def tables(simulated_results) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(simulated_results / "tables" / f"{name}.csv")
            for name in ("perturbation_study", "merged_subgroups", "annotation_study", "fits")}


def select(table, **where) -> pd.DataFrame:
    mask = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        mask &= table[column].to_numpy() == value
    return table[mask]


# --------------------------------------------------------------------------------------------
# The paper's figures


@pytest.mark.parametrize("inference", ["stan-advi", "nuts"])
@pytest.mark.parametrize("subgroup", ["microcalcifications", "soft_tissue_lesions"])
def test_perturbation_figure_plots_the_table(tables, inference, subgroup) -> None:
    table = tables["perturbation_study"]
    groups = ["radiologists", "gmic", "gmic_filtered"]
    figure = F.perturbation_figure(table, inference=inference, groups=groups, subgroup=subgroup)

    confidence = errorbar_series(axis_named(figure, "confidence"))
    separability = errorbar_series(axis_named(figure, "separability"))
    fitted = [g for g in groups if len(select(table, inference=inference, observer_group=g))]
    assert set(confidence) == set(fitted)
    assert set(separability) == set(fitted) | {F.observed_label(g) for g in ("gmic", "gmic_filtered")}
    for group in fitted:
        rows = select(table, inference=inference, observer_group=group, subgroup=subgroup).sort_values("severity_mm")
        assert_series_equal(confidence[group], rows, "confidence_mean", "confidence_sd")
        assert_series_equal(separability[group], rows, "separability_mean", "separability_sd")
        assert printed_pvalues(figure, "confidence", group) == expected_pvalues(rows["p_confidence_positive"])
        assert printed_pvalues(figure, "separability", group) == expected_pvalues(rows["p_separability_drop"])
    for group in ("gmic", "gmic_filtered"):
        label = F.observed_label(group)
        rows = select(table, inference="observed", observer_group=group, subgroup=subgroup).sort_values("severity_mm")
        assert_series_equal(separability[label], rows, "separability_mean", "separability_sd")
        assert printed_pvalues(figure, "separability", label) == expected_pvalues(rows["p_separability_drop"])


@pytest.mark.parametrize("how", ["refit", "pooled"])
def test_merged_figure_plots_the_merged_table(tables, how) -> None:
    table = merged_rows(tables["merged_subgroups"], how)
    figure = F.perturbation_figure(table, inference="stan-advi", groups=["radiologists", "gmic"], subgroup="merged")
    confidence = errorbar_series(axis_named(figure, "confidence"))
    for group in ("radiologists", "gmic"):
        rows = select(tables["merged_subgroups"], inference="stan-advi", observer_group=group, merged_by=how)
        assert len(rows) and (rows["merged_by"] == how).all()
        assert_series_equal(confidence[group], rows, "confidence_mean", "confidence_sd")


def test_annotation_figure_plots_every_scheme(tables) -> None:
    table = tables["annotation_study"]
    figure = F.annotation_figure(table, group="gmic")
    for subgroup in ("microcalcifications", "soft_tissue_lesions"):
        series = errorbar_series(axis_named(figure, subgroup))
        assert set(series) == {"entire", "roi_interior", "roi_exterior"}
        for scheme, plotted in series.items():
            rows = select(table, observer_group="gmic", subgroup=subgroup, scheme=scheme).sort_values("severity_mm")
            assert_series_equal(plotted, rows, "separability_mean", "separability_sd")
            assert printed_pvalues(figure, subgroup, scheme) == expected_pvalues(rows["p_separability_drop"])


@pytest.mark.parametrize("subgroup", ["microcalcifications", "soft_tissue_lesions"])
def test_inference_comparison_plots_each_method_and_shades_disagreements(tables, subgroup) -> None:
    table = tables["perturbation_study"]
    groups = ["radiologists", "gmic", "gmic_filtered"]
    figure = F.inference_comparison_figure(table, subgroup=subgroup, groups=groups, methods=["stan-advi", "nuts"])
    for group in groups:
        for panel, mean, sd, p_column in (("confidence", "confidence_mean", "confidence_sd", "p_confidence_positive"),
                                          ("separability", "separability_mean", "separability_sd",
                                           "p_separability_drop")):
            axis = axis_named(figure, f"{group}|{panel}")
            series = errorbar_series(axis)
            methods = [m for m in ("stan-advi", "nuts") if len(select(table, inference=m, observer_group=group))]
            expected = set(methods) | ({"observed"} if panel == "separability" and group != "radiologists" else set())
            assert set(series) == expected
            for method in expected:
                rows = select(table, inference=method, observer_group=group, subgroup=subgroup)
                assert_series_equal(series[method], rows, mean, sd)
            # Shaded severities: exactly those where stan-advi and nuts fall on different sides of 0.05.
            shaded = sorted(severity_of(axis, [np.mean(p.get_x() + p.get_width() / 2)])[0] for p in axis.patches)
            if len(methods) == 2:
                both = select(table, observer_group=group, subgroup=subgroup).pivot_table(
                    index="severity_mm", columns="inference", values=p_column)[methods].dropna()
                split = both[(both["stan-advi"] < 0.05) != (both["nuts"] < 0.05)]
                assert shaded == sorted(split.index)
            else:
                assert shaded == []


# --------------------------------------------------------------------------------------------
# Diagnostics


def test_elbo_figure_plots_every_stan_advi_trace(simulated_results) -> None:
    separate, merged = ResultsFolder(simulated_results).find_posteriors()
    attrs = [load_posterior(p).posterior.attrs for p in separate + merged]
    figure = F.elbo_figure(F.elbo_traces(attrs), inference="stan-advi")
    advi = [a for a in attrs if a["inference"] == "stan-advi"]
    for fit in advi:
        label = f"{fit['observer_group']}|seed{int(fit['seed'])}" + ("|merged" if int(fit["merged"]) else "")
        top = [line for line in axis_named(figure, f"{fit['observer_group']}|elbo").lines if line.get_label() == label]
        assert len(top) == 1
        np.testing.assert_array_equal(top[0].get_xdata(), np.asarray(fit["elbo_iteration"]))
        np.testing.assert_allclose(top[0].get_ydata(), -np.asarray(fit["elbo"], dtype=float))
        assert top[0].get_xdata()[-1] == int(fit["iterations"])  # the trace ends where the fit stopped
        bottom = [line for line in axis_named(figure, f"{fit['observer_group']}|relative change").lines
                  if line.get_label() == label][0]
        elbo = np.asarray(fit["elbo"], dtype=float)
        # Stan's relative change: 1 at the first evaluation (its previous ELBO is 0), then |diff| / |current|.
        np.testing.assert_allclose(bottom.get_ydata(), np.concatenate([[1.0], np.abs(np.diff(elbo) / elbo[1:])]))


def test_nuts_diagnostics_match_arviz_summary(simulated_results) -> None:
    separate, _ = ResultsFolder(simulated_results).find_posteriors()
    nuts = [load_posterior(p) for p in separate if p.parts[-3] == "nuts"]
    summary = F.nuts_summary(nuts)
    figure = F.nuts_diagnostics_figure(summary, subgroups=["microcalcifications", "soft_tissue_lesions"])
    for posterior in nuts:
        group = posterior.posterior.attrs["observer_group"]
        reference = severity_effect_summary(posterior)  # az.summary, indexed 'gamma[severity, subgroup]'
        for subgroup in ("microcalcifications", "soft_tissue_lesions"):
            for statistic in ("r_hat", "ess_bulk"):
                line = [x for x in axis_named(figure, f"{subgroup}|{statistic}").lines if x.get_label() == group][0]
                severities = severity_of(axis_named(figure, f"{subgroup}|{statistic}"), line.get_xdata())
                expected = [reference.loc[f"gamma[{s}, {subgroup}]", statistic] for s in severities]
                # az.summary rounds to 2 decimals (r_hat) / integers (ess).
                np.testing.assert_allclose(line.get_ydata(), expected, atol=0.006 if statistic == "r_hat" else 0.51)


# --------------------------------------------------------------------------------------------
# Colours and grouping


def test_paper_groups_have_fixed_distinct_colours_and_others_follow_in_order() -> None:
    colours = group_colours(["readers", "gmic", "networks", "radiologists", "dmv_filtered"])
    assert {g: colours[g] for g in ("gmic", "radiologists", "dmv_filtered")} == {
        g: PAPER_GROUP_COLOURS[g] for g in ("gmic", "radiologists", "dmv_filtered")}
    assert colours["readers"] == "#E69F00" and colours["networks"] == "#56B4E9"  # Okabe-Ito, in order given
    many = group_colours([f"group{i}" for i in range(12)] + list(PAPER_GROUP_COLOURS))
    assert len(set(list(many.values())[:9])) == 9
    assert len(set(PAPER_GROUP_COLOURS.values())) == len(PAPER_GROUP_COLOURS)


def test_each_network_and_its_filtered_partner_differ_in_hue() -> None:
    """Issue 17: gmic and gmic_filtered were two blues (1 degree of hue apart), hard to tell apart in the p-value rows."""
    from matplotlib.colors import rgb_to_hsv, to_rgb

    def hue_degrees(colour: str) -> float:
        return 360.0 * rgb_to_hsv(to_rgb(colour))[0]

    for network in ("gmic", "dmv"):
        first, second = hue_degrees(PAPER_GROUP_COLOURS[network]), hue_degrees(PAPER_GROUP_COLOURS[f"{network}_filtered"])
        distance = min(abs(first - second), 360.0 - abs(first - second))
        assert distance >= 30.0, (network, distance)


def test_the_same_group_gets_the_same_colour_in_every_figure(tables) -> None:
    table = tables["perturbation_study"]
    colours = group_colours(["radiologists", "gmic", "gmic_filtered"])
    first = F.perturbation_figure(table, inference="nuts", groups=["gmic"], subgroup="microcalcifications",
                                  colours=colours)
    second = F.inference_comparison_figure(table, subgroup="microcalcifications", groups=["gmic"],
                                           methods=["stan-advi", "nuts"], colours=colours)
    from matplotlib.colors import to_hex

    def colour(figure, axis_label, series):
        container = [c for c in axis_named(figure, axis_label).containers if c.get_label() == series][0]
        return to_hex(container.lines[0].get_color())

    expected = PAPER_GROUP_COLOURS["gmic"].lower()
    assert colour(first, "confidence", "gmic") == colour(second, "gmic|confidence", "nuts") == expected


def test_architectures_pair_each_network_with_the_humans_and_its_filtered_partner() -> None:
    kinds = {"radiologists": "human", "gmic": "machine", "gmic_filtered": "machine", "dmv": "machine",
             "resnet_filtered": "machine"}
    assert F.architectures(kinds) == [
        ("gmic", ["radiologists", "gmic", "gmic_filtered"]),
        ("dmv", ["radiologists", "dmv"]),
        ("resnet_filtered", ["radiologists", "resnet_filtered"]),
    ]


def test_every_panel_has_axis_labels_with_units(tables) -> None:
    figure = F.perturbation_figure(tables["perturbation_study"], inference="nuts", groups=["gmic"],
                                   subgroup="microcalcifications")
    for label in ("confidence", "separability"):
        axis = axis_named(figure, label)
        assert "(mm)" in axis.get_xlabel()
        assert "(" in axis.get_ylabel()


def test_p_value_rows_stay_readable_at_the_reports_width(tables) -> None:
    """Issue 17: the rows were about 7 px high in the report. Shown 864 px wide (the report embeds a 9-inch figure at
    96 px per inch), each row of p-values is at least 18 px apart and its text at least 7.5 pt."""
    figure = F.perturbation_figure(tables["perturbation_study"], inference="stan-advi",
                                   groups=["radiologists", "gmic", "gmic_filtered"], subgroup="soft_tissue_lesions")
    figure.canvas.draw()
    texts = [t for axis in figure.axes for t in axis.texts if (t.get_gid() or "").startswith("p|confidence|")]
    assert texts and min(t.get_fontsize() for t in texts) >= 7.5
    scale = 864 / (figure.get_figwidth() * figure.dpi)  # display pixels per figure pixel in the report
    rows = sorted({round(t.get_window_extent().y0 * scale, 1) for t in texts})
    assert len(rows) == 3 and min(np.diff(rows)) >= 18, rows
