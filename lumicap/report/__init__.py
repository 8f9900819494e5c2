"""What a user looks at after enhancing: the report of a folder of results (contact sheet, sortable HTML
page, metrics.csv) and the darkened demo photos ``lumicap enhance --demo`` shows it on.

    build  ``build_report`` and its parts: matching images across folders, measuring, the three files
    demo   the synthetic low-light photos of ``--demo`` (scikit-image samples, darkened with a fixed seed)
"""

from lumicap.report.build import (
    CLIP_LEVEL,
    REPORT_FILES,
    Compared,
    Report,
    ReportRow,
    build_report,
    index_images,
    measure,
    read_captions,
    render_html,
    row_label,
    write_contact_sheets,
    write_metrics_csv,
)

__all__ = [
    "CLIP_LEVEL", "REPORT_FILES", "Compared", "Report", "ReportRow", "build_report", "index_images", "measure",
    "read_captions", "render_html", "row_label", "write_contact_sheets", "write_metrics_csv",
]
