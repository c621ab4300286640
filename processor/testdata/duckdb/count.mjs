// count.mjs GLOB prints, as one JSON line, what DuckDB reads from the
// Parquet files matching GLOB: the rows, the distinct source offsets per
// partition, and sums over offset and over the length of value.
import { DuckDBInstance } from '@duckdb/node-api';

const glob = process.argv[2];
if (!glob) {
  console.error('usage: node count.mjs GLOB');
  process.exit(2);
}
const db = await DuckDBInstance.create(':memory:');
const conn = await db.connect();
const reader = await conn.runAndReadAll(
  `SELECT count(*) AS n,
          count(DISTINCT (partition, "offset")) AS distinct_offsets,
          sum("offset") AS offset_sum,
          sum(octet_length(value)) AS value_bytes
     FROM read_parquet('${glob.replaceAll("'", "''")}')`);
const [row] = reader.getRowObjectsJS();
console.log(JSON.stringify(row, (_, v) => (typeof v === 'bigint' ? Number(v) : v)));
