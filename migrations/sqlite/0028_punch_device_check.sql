-- PostgreSQL drops the foreign key from `punches` to `devices` here (see its 0028: the punch
-- writer locks and joins the device rows itself, and it cost PostgreSQL a trigger call per
-- punch). SQLite's check is a lookup in the same process and stays; this version exists so
-- both folders hold the same versions and names.
SELECT 1;
