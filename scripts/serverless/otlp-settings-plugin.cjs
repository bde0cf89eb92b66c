// The serverless.yml plugin for the OTLP settings (otlp-settings.ts). osls loads plugins with require(), and that
// one is TypeScript sharing lib/'s reading of the settings, so tsx compiles it as it loads.
const { join } = require('node:path');
const { require: tsxRequire } = require('tsx/cjs/api');

module.exports = tsxRequire(join(__dirname, 'otlp-settings.ts'), join(__dirname, 'otlp-settings-plugin.cjs')).OtlpSettingsPlugin;
