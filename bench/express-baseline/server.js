// The SePay reference's Node.js/Express handler (seed 004), a baseline for `sepay-dev bench`:
// check the Apikey, SELECT whether the transaction exists, else INSERT it, answer {success: true}.
const express = require('express');
const { Pool } = require('pg');

const apiKey = process.env.SEPAY_API_KEY;
const poolSize = Number(process.env.PG_POOL_MAX || 10);
const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: poolSize, idleTimeoutMillis: 0 });
const app = express();
app.use(express.json());

app.post('/webhook/sepay', async (req, res) => {
  if (!apiKey || req.get('authorization') !== `Apikey ${apiKey}`) {
    return res.status(401).json({ success: false });
  }
  const transaction = req.body;
  // the example keys on SePay's id: a delivery without one cannot be stored
  if (!Number.isInteger(transaction.id)) {
    return res.status(400).json({ success: false });
  }
  const exists = await pool.query('SELECT 1 FROM express_baseline_events WHERE id = $1', [transaction.id]);
  if (exists.rowCount > 0) {
    return res.json({ success: true });
  }
  await pool.query('INSERT INTO express_baseline_events (id, payload) VALUES ($1, $2)', [transaction.id, transaction]);
  res.json({ success: true });
});

async function main() {
  await pool.query(`CREATE TABLE IF NOT EXISTS express_baseline_events (
    id bigint PRIMARY KEY, payload jsonb NOT NULL, received_at timestamptz NOT NULL DEFAULT now())`);
  // the pool open before serving (and kept open), as the bench has the ingress's
  await Promise.all(Array.from({ length: poolSize }, () => pool.query('SELECT 1')));
  const port = Number(process.env.PORT);
  app.listen(port, '127.0.0.1', (err) => { if (err) throw err; });
}

main().catch((err) => { console.error(err); process.exit(1); });
