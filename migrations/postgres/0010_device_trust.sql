-- Created by 0001_device_side.sql: the PostgreSQL schema starts at the SQLite schema of
-- version 0015. This version exists so both folders hold the same versions and names.
SELECT 1;
