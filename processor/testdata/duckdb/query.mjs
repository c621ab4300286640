// query.mjs SQL prints, as one JSON line per row, what DuckDB answers to
// SQL (numbers as JSON numbers).
import { DuckDBInstance } from '@duckdb/node-api';

const sql = process.argv[2];
if (!sql) {
  console.error('usage: node query.mjs SQL');
  process.exit(2);
}
const db = await DuckDBInstance.create(':memory:');
const conn = await db.connect();
const reader = await conn.runAndReadAll(sql);
for (const row of reader.getRowObjectsJS()) {
  console.log(JSON.stringify(row, (_, v) => (typeof v === 'bigint' ? Number(v) : v)));
}
