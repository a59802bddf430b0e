"""Write a de-identified copy of a DICOM tree, as research exporters do (issue 23).

    python -m training.deidentify SRC DST [--replace-uids] [--date-shift-days N] [--salt S]
                                  [--remove KEYWORD ...] [--overwrite]

Every file under SRC is read (one at a time: streaming, the source is never modified), de-identified
and written to the same relative path under DST. Files that are not DICOM are skipped, except
`labels.csv`, which is copied beside the copy (its `series_uid` column mapped when UIDs are replaced).
What matters to a classifier is what such a copy loses, so the rules follow DICOM PS3.15 Annex E,
Table E.1-1 (Basic Application Level Confidentiality Profile) for the attributes that carry either
identity or the free-text descriptions that a classifier might lean on:

* all private data elements (odd groups, at any depth of nesting) are removed: the profile's action
  for private attributes is X unless the Retain Safe Private Option is claimed, which this tool does
  not. This takes the vendors' b-value tags (Siemens (0019,100C), GE (0043,1039), Philips
  (2001,1003)), the GE private image type (0043,102F), the Siemens CSA headers, and so on.
* free-text descriptions, per their action codes in Table E.1-1:
  SeriesDescription (0008,103E) X, StudyDescription (0008,1030) X, ImageComments (0020,4000) X,
  PerformedProcedureStepDescription (0040,0254) X, RequestedProcedureDescription (0032,1060) X/Z,
  ProtocolName (0018,1030) X/D, AcquisitionComments (0018,4000) X, DerivationDescription
  (0008,2111) X, AcquisitionDeviceProcessingDescription (0018,1400) X/D, FrameComments (0020,9158) X,
  AcquisitionProtocolDescription (0018,9424) X, ContributionDescription (0018,A003) X: removed (X, the
  first choice where the code offers several); ContrastBolusAgent (0018,0010) Z/D: emptied (Z; the
  element stays, zero length). SequenceName (0018,0024) and BodyPartExamined (0018,0015) are not in
  Table E.1-1, so the Basic Profile keeps them (standard attributes not listed are retained); some
  exporters drop more: `--remove SequenceName` (any keyword, repeatable) imitates them.
* identity: PatientName and PatientID are replaced by a pseudonym derived from the original ID and
  the salt (same patient, same pseudonym); PatientBirthDate is replaced by 1 January of the shifted
  birth year; the other patient, physician, operator, institution and device identifiers of the
  table's common MR set are removed or emptied (see `REMOVE`, `EMPTY`).
* dates: every DA value is shifted by `--date-shift-days` (default -3650) and every DT value's date
  part likewise, at any depth (the Retain Longitudinal Temporal Information with Modified Dates
  Option); times are kept.
* UIDs: kept by default (the Retain UIDs Option, as most research exports for longitudinal work do).
  With `--replace-uids` every UI value that is not a DICOM-defined UID (root 1.2.840.10008) is mapped
  to `2.25.<decimal of sha256(salt, uid)>`: the same UID maps to the same value in every file, so
  series, studies, frames of reference and references stay consistent; the file meta's
  MediaStorageSOPInstanceUID follows the SOPInstanceUID.
* PatientIdentityRemoved = YES, DeidentificationMethod and DeidentificationMethodCodeSequence
  (113100 Basic Profile, 113107 Modified Dates, 113110 Retain UIDs when kept) are added.

Pixel data and every other element are written back as read (same transfer syntax, same bytes).
"""
import argparse
import csv
import datetime
import hashlib
import os
import shutil
import sys

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.tag import Tag

# Table E.1-1, action X (or X first among the choices): removed.
REMOVE = [
    # descriptions
    "SeriesDescription", "StudyDescription", "ImageComments", "PerformedProcedureStepDescription",
    "RequestedProcedureDescription", "ProtocolName", "AcquisitionComments", "DerivationDescription",
    "AcquisitionDeviceProcessingDescription", "FrameComments", "AcquisitionProtocolDescription",
    "ContributionDescription", "CommentsOnThePerformedProcedureStep", "ReasonForTheRequestedProcedure",
    "AdmittingDiagnosesDescription", "PatientComments", "AdditionalPatientHistory", "StudyComments",
    # identity
    "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientAddress", "PatientAge",
    "PatientSize", "PatientWeight", "PatientTelephoneNumbers", "PatientMotherBirthName", "MilitaryRank",
    "EthnicGroup", "Occupation", "PatientBirthTime", "PatientBirthName", "MedicalRecordLocator",
    "InstitutionAddress", "InstitutionalDepartmentName", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord", "RequestingPhysician", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "ScheduledPerformingPhysicianName", "PerformedProcedureStepID", "RequestAttributesSequence",
    "ReferencedPatientSequence", "ReferencedStudySequence", "ReferencedPerformedProcedureStepSequence",
    "ProcedureCodeSequence", "DeviceSerialNumber", "StationName", "InstitutionName", "OperatorsName",
    "PerformedLocation", "PerformedStationName", "PerformedStationAETitle", "ScheduledStationAETitle",
    "AdmissionID", "IssuerOfPatientID", "CountryOfResidence", "RegionOfResidence", "PatientState",
    "PregnancyStatus", "SmokingStatus", "Allergies", "MedicalAlerts", "ResponsiblePerson",
    "ResponsibleOrganization", "PatientInsurancePlanCodeSequence", "RequestedProcedureID",
    "ScheduledProcedureStepID", "FillerOrderNumberImagingServiceRequest",
]
# Table E.1-1, action Z (or Z first): emptied (the element stays, zero length).
EMPTY = ["ContrastBolusAgent", "AccessionNumber", "StudyID", "ReferringPhysicianName", "PatientSex"]

DICOM_UID_ROOT = "1.2.840.10008."


class Deidentifier:
    def __init__(self, salt="mrsort", date_shift_days=-3650, replace_uids=False, remove=()):
        self.salt = salt
        self.shift = datetime.timedelta(days=date_shift_days)
        self.replace_uids = replace_uids
        self.remove_tags = {Tag(k) for k in list(REMOVE) + list(remove) if self._known(k)}
        self.empty_tags = {Tag(k) for k in EMPTY}
        self.uid_map = {}

    @staticmethod
    def _known(keyword):
        from pydicom.datadict import tag_for_keyword
        if tag_for_keyword(keyword) is None:
            raise ValueError(f"unknown DICOM keyword {keyword!r}")
        return True

    def _hash(self, text):
        return hashlib.sha256(f"{self.salt}\0{text}".encode()).hexdigest()

    def uid(self, value):
        """The replacement of one UID (itself where UIDs are kept or the UID is DICOM-defined)."""
        value = str(value).strip().rstrip("\0")
        if not self.replace_uids or not value or value.startswith(DICOM_UID_ROOT):
            return value
        if value not in self.uid_map:
            self.uid_map[value] = "2.25." + str(int(self._hash("uid:" + value)[:30], 16))
        return self.uid_map[value]

    def _shift_da(self, text):
        text = str(text).strip()
        if len(text) != 8 or not text.isdigit():
            return ""  # unparseable date: emptied (Z), never kept
        try:
            day = datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        except ValueError:
            return ""
        return (day + self.shift).strftime("%Y%m%d")

    def _shift_dt(self, text):
        text = str(text).strip()
        if len(text) < 8:
            return ""
        shifted = self._shift_da(text[:8])
        return shifted + text[8:] if shifted else ""

    def _clean(self, ds):
        for elem in list(ds):
            tag = elem.tag
            if tag.is_private:
                del ds[tag]
                continue
            if tag in self.remove_tags:
                del ds[tag]
                continue
            if tag in self.empty_tags:
                elem.value = None if elem.VR == "SQ" else ""
                continue
            if elem.VR == "SQ":
                for item in elem.value or []:
                    self._clean(item)
            elif elem.VR == "DA" and elem.value not in (None, ""):
                values = elem.value if elem.VM > 1 else [elem.value]
                shifted = [self._shift_da(v) for v in values]
                elem.value = shifted if elem.VM > 1 else shifted[0]
            elif elem.VR == "DT" and elem.value not in (None, ""):
                values = elem.value if elem.VM > 1 else [elem.value]
                shifted = [self._shift_dt(v) for v in values]
                elem.value = shifted if elem.VM > 1 else shifted[0]
            elif elem.VR == "UI" and self.replace_uids and elem.value not in (None, ""):
                if elem.VM > 1:
                    elem.value = [self.uid(v) for v in elem.value]
                else:
                    elem.value = self.uid(elem.value)

    def deidentify(self, ds):
        """De-identifies `ds` in place (the file meta too) and returns it."""
        original_id = str(ds.get("PatientID", "") or "") + "|" + str(ds.get("PatientName", "") or "")
        birth = str(ds.get("PatientBirthDate", "") or "")
        self._clean(ds)
        pseudonym = "ANON" + self._hash("patient:" + original_id)[:10].upper()
        ds.PatientName = pseudonym
        ds.PatientID = pseudonym
        if "PatientBirthDate" in ds:
            shifted = self._shift_da(birth)
            ds.PatientBirthDate = shifted[:4] + "0101" if shifted else ""
        ds.PatientIdentityRemoved = "YES"
        # LO: at most 64 characters.
        ds.DeidentificationMethod = "mrsort PS3.15 Basic Profile subset; dates shifted; UIDs " + (
            "replaced" if self.replace_uids else "kept")
        codes = [("113100", "Basic Application Confidentiality Profile"),
                 ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")]
        if not self.replace_uids:
            codes.append(("113110", "Retain UIDs Option"))
        items = []
        for value, meaning in codes:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            for elem in list(meta):
                if elem.tag.is_private:
                    del meta[elem.tag]
            if self.replace_uids and "MediaStorageSOPInstanceUID" in meta:
                meta.MediaStorageSOPInstanceUID = self.uid(meta.MediaStorageSOPInstanceUID)
        return ds


def deidentify_file(source, destination, deidentifier):
    """De-identifies one file; False (and nothing written) when it is not DICOM or pydicom cannot parse it."""
    try:
        ds = pydicom.dcmread(source)
    except (InvalidDicomError, EOFError, OSError, ValueError):
        return False
    if "SOPInstanceUID" not in ds:
        # pydicom could not parse it (e.g. a truncated encapsulated file reads as an empty data set):
        # writing it back would lose the header, so the copy leaves it out.
        return False
    deidentifier.deidentify(ds)
    os.makedirs(os.path.dirname(destination) or ".", exist_ok=True)
    temporary = destination + ".part"
    ds.save_as(temporary, enforce_file_format=False)
    os.replace(temporary, destination)
    return True


def copy_labels(source, destination, deidentifier):
    with open(source, newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    for row in rows:
        if "series_uid" in row and row["series_uid"]:
            row["series_uid"] = deidentifier.uid(row["series_uid"])
    with open(destination, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def deidentify_tree(source, destination, deidentifier, overwrite=False, log=sys.stderr):
    source, destination = os.path.abspath(source), os.path.abspath(destination)
    if destination == source or destination.startswith(source + os.sep):
        raise SystemExit("DST must lie outside SRC")
    if os.path.exists(destination) and os.listdir(destination) and not overwrite:
        raise SystemExit(f"{destination} is not empty (--overwrite to write into it)")
    written = skipped = 0
    for root, dirs, files in os.walk(source):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            relative = os.path.relpath(path, source)
            if relative == "labels.csv" or name.startswith("."):
                continue
            if deidentify_file(path, os.path.join(destination, relative), deidentifier):
                written += 1
            else:
                skipped += 1
    labels = os.path.join(source, "labels.csv")
    if os.path.exists(labels):
        os.makedirs(destination, exist_ok=True)
        copy_labels(labels, os.path.join(destination, "labels.csv"), deidentifier)
    print(f"{destination}: {written} DICOM files de-identified, {skipped} files skipped (not DICOM or unparseable)"
          + (f", {len(deidentifier.uid_map)} UIDs replaced" if deidentifier.replace_uids else ""), file=log)
    return written, skipped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source")
    parser.add_argument("destination")
    parser.add_argument("--replace-uids", action="store_true", help="map every non-DICOM-defined UID to 2.25.<hash>")
    parser.add_argument("--date-shift-days", type=int, default=-3650)
    parser.add_argument("--salt", default="mrsort", help="secret of the pseudonyms and UID map")
    parser.add_argument("--remove", nargs="*", default=[], metavar="KEYWORD",
                        help="also remove these attributes (e.g. SequenceName), as harsher exporters do")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    deidentifier = Deidentifier(salt=args.salt, date_shift_days=args.date_shift_days,
                                replace_uids=args.replace_uids, remove=args.remove)
    deidentify_tree(args.source, args.destination, deidentifier, overwrite=args.overwrite)


if __name__ == "__main__":
    main()
