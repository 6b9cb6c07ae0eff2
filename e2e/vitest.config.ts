import { configDefaults, defineConfig } from 'vitest/config';
import shared from '../vitest.shared.ts';
import { SERIAL } from './vitest.serial.config.ts';

export default defineConfig({
  ...shared,
  test: { ...shared.test, exclude: [...configDefaults.exclude, ...SERIAL] },
});
