-- Raw envelopes are stored out of line without a compression attempt. An envelope carries the
-- provider's body base64-encoded, which pglz (the default) cannot shrink by the 25 % it requires:
-- every archived envelope over ~2 kB paid a failed compression (about a quarter of the archive
-- insert's server time, measured) and was then stored out of line uncompressed anyway. Same bytes
-- on disk; applies to envelopes written from now on (existing rows are not rewritten).
ALTER TABLE webhook_events ALTER COLUMN raw_envelope SET STORAGE EXTERNAL;
