import { setupJest } from 'cdktf/lib/testing/adapters/jest';

setupJest();
