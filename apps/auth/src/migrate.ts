import { runMigrateCommand } from '@atoll/db';
import { migrations, SCHEMA } from './migrations/index.ts';

process.exitCode = await runMigrateCommand(process.env.DATABASE_URL, SCHEMA, migrations);
