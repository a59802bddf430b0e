"""Physics-based synthetic brain MRI DICOM corpus generator (issue 3).

Modules: anatomy (MNI152 phantom), tissues/physics (relaxation + signal
equations), subject (per-study randomised head), geometry (slice planning,
orientation labels), imaging (k-space, noise, artefacts), sequences*
(per-class recipes), vendors (header conventions), dicomio (writer),
protocols/generator (studies), cli.
"""
